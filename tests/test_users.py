"""Dashboard accounts: password hashing, the first admin, the limiter and ``heliograph users``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from conftest import free_port
from heliograph.auth import users as accounts
from heliograph.auth.bootstrap import bootstrap
from heliograph.auth.sessions import LoginLimiter, load_session, start_session
from heliograph.config import Settings
from heliograph.store import orgs
from heliograph.store import users as user_store
from heliograph.store.engine import make_engine, migrate
from serve_process import ServeProcess
from web_support import csrf_of


def test_password_hashes() -> None:
    stored = accounts.hash_password("s3cret password")
    assert stored.startswith("scrypt$16384$8$1$") and "s3cret" not in stored
    assert accounts.verify_password("s3cret password", stored)
    assert not accounts.verify_password("s3cret passwore", stored)
    assert accounts.hash_password("s3cret password") != stored  # random salt
    once = accounts.hash_password("temporary!", one_time=True)
    assert accounts.is_one_time(once) and not accounts.is_one_time(stored)
    assert accounts.verify_password("temporary!", once)
    for broken in ("", "plain", "md5$x$y", "scrypt$1$2$3$$", "scrypt$16384$8$1$!!$!!"):
        assert not accounts.verify_password("x", broken)
    with pytest.raises(ValueError):
        accounts.check_password("short")
    assert accounts.check_email(" Ann@Example.COM ") == "ann@example.com"
    with pytest.raises(ValueError):
        accounts.check_email("<script>@x")


def test_limiter_counts_per_email_and_forgets() -> None:
    limiter = LoginLimiter(max_failures=3, window_s=60, max_entries=2)
    for _ in range(3):
        assert limiter.retry_after("a") == 0
        limiter.failed("a")
    assert 0 < limiter.retry_after("a") <= 60
    assert limiter.retry_after("b") == 0
    limiter.succeeded("a")
    assert limiter.retry_after("a") == 0
    for email in ("x", "y", "z"):
        limiter.failed(email)
    assert len(limiter._failures) == 2  # bounded


def test_first_admin_and_sessions(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    try:
        created = accounts.ensure_admin(engine, Settings(database_url=db_url))
        assert created is not None and created.email == "admin@localhost"
        assert created.password is not None
        row = user_store.find_by_email(engine, "admin@localhost")
        assert (
            row is not None
            and row["role"] == "admin"
            and accounts.is_one_time(row["password_hash"])
        )
        assert accounts.ensure_admin(engine, Settings(database_url=db_url)) is None
        token = start_session(engine, row["id"], 1.0)
        session = load_session(engine, token)
        assert session is not None and session.must_change_password and session.is_admin
        assert load_session(engine, token + "x") is None
        accounts.set_password(engine, row["id"], "a brand new one")
        session = load_session(engine, token)
        assert session is not None and not session.must_change_password
        assert user_store.disable_user(engine, row["id"])
        assert load_session(engine, token) is None
        assert not user_store.disable_user(engine, row["id"])
    finally:
        engine.dispose()


def test_admin_from_settings(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 's.db'}")
    migrate(engine)
    settings = Settings(
        home=tmp_path, admin_email="Boss@Example.com", admin_password=SecretStr("from the env")
    )
    created = accounts.ensure_admin(engine, settings)
    assert created is not None and created.email == "boss@example.com" and created.password is None
    row = user_store.find_by_email(engine, "boss@example.com")
    assert row is not None and not accounts.is_one_time(row["password_hash"])
    assert accounts.verify_password("from the env", row["password_hash"])
    assert row["org_id"] == orgs.first_org(engine)
    engine.dispose()


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heliograph", *args],
        env={**os.environ, "HELIOGRAPH_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_users_cli(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'heliograph.db'}")  # a store serve created
    migrate(engine)
    bootstrap(engine)
    engine.dispose()
    made = run(tmp_path, "users", "create", "--email", "Ops@Example.com", "--role", "admin")
    assert made.returncode == 0, made.stderr
    password = made.stdout.strip().splitlines()[-1]
    assert len(password) >= 12 and " " not in password
    chosen = run(
        tmp_path, "users", "create", "--email", "v@example.com", "--password", "pick a good one"
    )
    assert chosen.returncode == 0 and "pick a good one" not in chosen.stdout
    listed = run(tmp_path, "users", "list")
    assert "ops@example.com" in listed.stdout and "viewer" in listed.stdout
    assert password not in listed.stdout and "active" in listed.stdout
    dup = run(tmp_path, "users", "create", "--email", "ops@example.com")
    assert dup.returncode != 0 and "already exists" in dup.stderr
    bad = run(tmp_path, "users", "create", "--email", "x@y.z", "--role", "owner")
    assert bad.returncode != 0 and "owner" in bad.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'heliograph.db'}")
    row = user_store.find_by_email(engine, "ops@example.com")
    assert row is not None and accounts.verify_password(password, row["password_hash"])
    assert accounts.is_one_time(row["password_hash"])
    token = start_session(engine, row["id"], 1.0)
    disabled = run(tmp_path, "users", "disable", "OPS@example.com")
    assert disabled.returncode == 0 and "sessions have ended" in disabled.stdout
    assert load_session(engine, token) is None
    assert "disabled" in run(tmp_path, "users", "list").stdout
    again = run(tmp_path, "users", "disable", "ops@example.com")
    assert again.returncode != 0 and "already disabled" in again.stderr
    assert run(tmp_path, "users", "disable", "nobody@x.y").returncode != 0
    reset = run(tmp_path, "users", "reset-password", "v@example.com")
    new = reset.stdout.strip().splitlines()[-1]
    row = user_store.find_by_email(engine, "v@example.com")
    assert row is not None and accounts.verify_password(new, row["password_hash"])
    engine.dispose()


def test_serve_prints_a_one_time_admin_password(tmp_path: Path) -> None:
    port = free_port()
    serve = ServeProcess(tmp_path, port).start()
    try:
        line = next(line for line in serve.lines if "one-time password" in line)
        password = line.split()[-1]
        assert any("log in as admin@localhost" in line for line in serve.lines)
        with httpx.Client(base_url=serve.base_url) as client:
            token = csrf_of(client.get("/login").text)
            resp = client.post(
                "/login",
                data={"email": "admin@localhost", "password": password, "csrf_token": token},
            )
            assert resp.status_code == 303 and resp.headers["location"] == "/settings/password"
    finally:
        serve.stop()
    restarted = ServeProcess(tmp_path, port).start()
    try:
        assert not any("one-time password" in line for line in restarted.lines)
    finally:
        restarted.stop()
