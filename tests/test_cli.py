"""The ``heliograph`` command, run as a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from alembic.script import ScriptDirectory

from conftest import free_port
from heliograph.auth.bootstrap import bootstrap
from heliograph.store.engine import MIGRATIONS, make_engine, migrate
from mock_upstream import MockUpstream
from serve_process import ServeProcess

# The newest migration: what `heliograph migrate` must report having reached.
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heliograph", *args],
        env={**os.environ, "HELIOGRAPH_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'heliograph.db'}")
    migrate(engine)
    bootstrap(engine)  # keys manage an existing store: one `heliograph serve` has started
    engine.dispose()
    created = run(tmp_path, "keys", "create", "--name", "ci", "--scope", "read")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("hg_") and len(key) > 30 and " " not in key
    listed = run(tmp_path, "keys", "list")
    assert "ci" in listed.stdout and "read" in listed.stdout and "active" in listed.stdout
    assert key not in listed.stdout, "keys list must never show a key"
    assert key[:9] in listed.stdout  # the display prefix
    db = (tmp_path / "heliograph.db").read_bytes()
    assert key.encode() not in db, "the key itself must not be stored"
    revoked = run(tmp_path, "keys", "revoke", key[:9])
    assert revoked.returncode == 0 and "Revoked 1" in revoked.stdout
    assert "revoked" in run(tmp_path, "keys", "list").stdout
    again = run(tmp_path, "keys", "revoke", key[:9])
    assert again.returncode != 0 and "no active key" in again.stderr
    bad = run(tmp_path, "keys", "create", "--name", "x", "--scope", "god")
    assert bad.returncode != 0 and "god" in bad.stderr


def test_migrate_and_settings(tmp_path: Path) -> None:
    migrated = run(tmp_path, "migrate")
    assert migrated.returncode == 0 and f"revision {HEAD}" in migrated.stdout
    assert f"Creating a new store at {tmp_path / 'heliograph.db'}" in migrated.stderr
    shown = run(
        tmp_path,
        "settings",
        HELIOGRAPH_OPENAI_API_KEY="sk-very-secret",
        HELIOGRAPH_DATABASE_URL="postgresql://hg:pw123@db.internal/hg",
        HELIOGRAPH_PORT="9999",
    )
    assert shown.returncode == 0
    assert "sk-very-secret" not in shown.stdout and "pw123" not in shown.stdout
    assert "HELIOGRAPH_PORT = 9999" in shown.stdout


def test_retention_run_on_an_old_sqlite_file_and_its_vacuum(tmp_path: Path) -> None:
    import sqlite3

    from heliograph.store import orgs
    from heliograph.store.retention import sqlite_space

    with sqlite3.connect(tmp_path / "heliograph.db") as db:  # made before auto_vacuum was set
        db.execute("CREATE TABLE old_filler (x TEXT)")
    assert run(tmp_path, "migrate").returncode == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'heliograph.db'}")
    orgs.create_org(engine, "acme")
    engine.dispose()
    unknown = run(tmp_path, "retention", "run", "--org", "nope")
    assert unknown.returncode == 1 and "no organization named 'nope'" in unknown.stderr
    plain = run(tmp_path, "retention", "run", HELIOGRAPH_RETENTION_RECORDS_DAYS="30")
    assert plain.returncode == 0, plain.stderr
    assert "Deleted acme: nothing" in plain.stdout
    assert "not returned to the OS" in plain.stderr and "--vacuum" in plain.stderr
    vacuumed = run(tmp_path, "retention", "run", "--vacuum")
    assert vacuumed.returncode == 0, vacuumed.stderr
    assert "not returned" not in vacuumed.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'heliograph.db'}")
    space = sqlite_space(engine)
    engine.dispose()
    assert space is not None and space.auto_vacuum == 2  # incremental from now on
    shown = run(tmp_path, "retention", "show", HELIOGRAPH_RETENTION_BODIES_DAYS="7")
    assert shown.returncode == 0, shown.stderr
    assert "acme (" in shown.stdout and "bodies:  7 days (default)" in shown.stdout
    bad = run(tmp_path, "retention", "show", HELIOGRAPH_RETENTION_BODIES_DAYS="70",
              HELIOGRAPH_RETENTION_RECORDS_DAYS="7")  # fmt: skip
    assert bad.returncode == 1 and "must be at least retention_bodies_days" in bad.stderr


def test_serve_first_start_prints_keys_and_base_url_then_tail(
    tmp_path: Path, mock: MockUpstream
) -> None:
    port = free_port()
    serve = ServeProcess(tmp_path, port, HELIOGRAPH_UPSTREAM_OPENAI_URL=mock.url).start()
    try:
        assert f"Creating a new store at {tmp_path / 'heliograph.db'}" in serve.lines
        write_key = serve.key("write key")
        hint = next(line for line in serve.lines if "Point your" in line)
        assert hint.endswith(f"http://127.0.0.1:{port}/v1/{write_key}")
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/{write_key}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer sk-p", "Helicone-User-Id": "tail-user"},
        )
        assert resp.status_code == 200
        admin = serve.key("admin key")
        for _ in range(100):
            rows = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/requests",
                headers={"Authorization": f"Bearer {admin}"},
            ).json()["data"]
            if rows:
                break
            time.sleep(0.05)
        assert rows and rows[0]["user_id"] == "tail-user"
        tail = run(tmp_path, "tail", "--once")
        assert tail.returncode == 0
        line = tail.stdout.strip().splitlines()[-1]
        assert "gpt-4o-mini" in line and "tail-user" in line and "200 ok" in line
    finally:
        serve.stop()
    restarted = ServeProcess(tmp_path, free_port(), HELIOGRAPH_UPSTREAM_OPENAI_URL=mock.url)
    restarted.start()
    try:
        assert not any("First start" in line for line in restarted.lines)
        assert not any("Creating a new store" in line for line in restarted.lines)
    finally:
        restarted.stop()


def test_serve_with_the_writer_off_keeps_records_in_the_spool_for_later(
    tmp_path: Path, mock: MockUpstream
) -> None:
    off = ServeProcess(
        tmp_path, free_port(), HELIOGRAPH_UPSTREAM_OPENAI_URL=mock.url, HELIOGRAPH_WRITER="off"
    ).start()
    try:
        assert any("Writer: off" in line for line in off.lines)
        write_key, admin = off.key("write key"), off.key("admin key")
        resp = httpx.post(
            f"{off.base_url}/v1/{write_key}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer sk-p"},
        )
        assert resp.status_code == 200
        rid = resp.headers["heliograph-id"]
        time.sleep(1.0)  # a writer polling every 0.02 s would have stored it by now
        listed = httpx.get(
            f"{off.base_url}/api/v1/requests", headers={"Authorization": f"Bearer {admin}"}
        ).json()["data"]
        assert listed == []
        assert any(p.stat().st_size > 0 for p in (tmp_path / "spool").rglob("*.seg"))
    finally:
        off.stop()
    on = ServeProcess(tmp_path, free_port(), HELIOGRAPH_UPSTREAM_OPENAI_URL=mock.url).start()
    try:
        for _ in range(100):
            listed = httpx.get(
                f"{on.base_url}/api/v1/requests", headers={"Authorization": f"Bearer {admin}"}
            ).json()["data"]
            if listed:
                break
            time.sleep(0.05)
        assert [r["id"] for r in listed] == [rid]
    finally:
        on.stop()
