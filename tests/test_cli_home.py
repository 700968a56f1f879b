"""Where data lives: one rule for every command, run as real subprocesses.

``--home`` (else HELIOGRAPH_HOME, else ~/.heliograph) picks the data directory and its
config.toml; ``--database-url`` (else the variable, else config.toml) picks the store. Once,
`keys`, `tail`, `export` and `prices` had no ``--home``, config.toml was looked up from the
environment only, and a command pointed at an empty home silently made a new store and
organization there, which looked like lost data.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect

from conftest import create_pg_database
from heliograph.auth.bootstrap import Bootstrap, bootstrap
from heliograph.store import orgs
from heliograph.store.engine import make_engine, migrate
from query_support import insert, row

# Every command that only reads or manages an existing store.
STORE_COMMANDS = [
    ("keys", "list"),
    ("keys", "create", "--name", "ci", "--scope", "read"),
    ("keys", "revoke", "hg_abcdef"),
    ("users", "list"),
    ("users", "create", "--email", "someone@example.com"),
    ("users", "disable", "someone@example.com"),
    ("users", "reset-password", "someone@example.com"),
    ("tail", "--once"),
    ("export",),
    ("prices", "recompute"),
    ("prices", "unpriced"),
]


def clean_env(user_home: Path, **extra: str) -> dict[str, str]:
    """The environment without HELIOGRAPH_* variables, and a HOME of our own, so that
    ~/.heliograph is never the tester's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOGRAPH_")}
    return {**env, "HOME": str(user_home), **extra}


def heliograph(user_home: Path, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "heliograph", *map(str, args)],
        env=clean_env(user_home, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def user_home(tmp_path: Path) -> Path:
    home = tmp_path / "user"
    home.mkdir()
    return home


def make_store(home: Path, *, org: bool = True) -> Bootstrap | None:
    """A store in ``home`` as `heliograph serve` leaves it (with ``org``) or `migrate` does."""
    engine = make_engine(f"sqlite:///{home / 'heliograph.db'}")
    try:
        migrate(engine)
        return bootstrap(engine) if org else None
    finally:
        engine.dispose()


def assert_refused(done: subprocess.CompletedProcess[str], home: Path) -> None:
    assert done.returncode == 1, (done.stdout, done.stderr)
    message = " ".join(done.stderr.split())
    assert "no Heliograph store at" in message, message
    assert str(home) in message
    assert "heliograph serve" in message and "heliograph migrate" in message
    assert "--home" in message


@pytest.mark.parametrize("args", STORE_COMMANDS, ids=" ".join)
def test_a_command_on_an_empty_home_fails_clearly_and_creates_nothing(
    args: tuple[str, ...], tmp_path: Path, user_home: Path
) -> None:
    missing = tmp_path / "no-such-home"
    assert_refused(heliograph(user_home, *args, "--home", missing), missing)
    assert not missing.exists(), "the command created the home"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(heliograph(user_home, *args, HELIOGRAPH_HOME=str(empty)), empty)
    assert list(empty.iterdir()) == [], "the command wrote into the empty home"
    assert list(user_home.iterdir()) == [], "the command touched ~/.heliograph"


def test_a_postgresql_database_without_our_tables_is_refused(
    pg_admin: str, tmp_path: Path, user_home: Path
) -> None:
    url, drop = create_pg_database(pg_admin)
    try:
        done = heliograph(user_home, "keys", "list", "--database-url", url, "--home", tmp_path)
        assert_refused(done, tmp_path)
        assert url.rsplit("/", 1)[1] in done.stderr  # names the database
        engine = make_engine(url)
        try:
            assert inspect(engine).get_table_names() == [], "the command created tables"
        finally:
            engine.dispose()
    finally:
        drop()


def test_home_flag_wins_over_the_environment_for_every_store_command(
    tmp_path: Path, user_home: Path
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    home.mkdir()
    first = make_store(home)
    assert first is not None
    engine = make_engine(f"sqlite:///{home / 'heliograph.db'}")
    try:
        now = int(time.time() * 1000)
        insert(engine, [row(first.org_id, 7, created_at=now, model="home-model", user_id="u-7")])
    finally:
        engine.dispose()
    env = {"HELIOGRAPH_HOME": str(elsewhere)}  # empty: would be refused if it were used

    created = heliograph(user_home, "keys", "create", "--name", "ci", "--scope", "read",
                         "--home", home, **env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    assert f"organization {first.org_id}" in created.stdout
    listed = heliograph(user_home, "keys", "list", "--home", home, **env)
    assert listed.returncode == 0 and " ci " in listed.stdout, listed.stderr
    tail = heliograph(user_home, "tail", "--once", "--home", home, **env)
    assert tail.returncode == 0, tail.stderr
    assert "home-model" in tail.stdout and "u-7" in tail.stdout
    exported = heliograph(user_home, "export", "--home", home, **env)
    assert exported.returncode == 0 and '"home-model"' in exported.stdout, exported.stderr
    unpriced = heliograph(user_home, "prices", "unpriced", "--home", home, **env)
    assert unpriced.returncode == 0, unpriced.stderr
    recomputed = heliograph(user_home, "prices", "recompute", "--home", home, **env)
    assert recomputed.returncode == 0 and "Recomputed 1 requests" in recomputed.stdout
    users = heliograph(user_home, "users", "list", "--home", home, **env)
    assert users.returncode == 0, users.stderr
    assert not elsewhere.exists()


def test_keys_and_users_never_create_an_organization(tmp_path: Path, user_home: Path) -> None:
    """Only serve and demo bootstrap the default organization (on their first start)."""
    make_store(tmp_path, org=False)  # what `heliograph migrate` leaves
    for args in (
        ("keys", "create", "--name", "ci", "--scope", "read"),
        ("users", "create", "--email", "someone@example.com"),
    ):
        done = heliograph(user_home, *args, "--home", tmp_path)
        assert done.returncode == 1, done.stdout
        assert "no organization yet" in done.stderr and "heliograph serve" in done.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'heliograph.db'}")
    try:
        assert orgs.count_orgs(engine) == 0
    finally:
        engine.dispose()
    make_store(tmp_path)
    wrong = heliograph(
        user_home, "keys", "create", "--name", "x", "--scope", "read", "--org", "nope",
        "--home", tmp_path,
    )  # fmt: skip
    assert wrong.returncode == 1 and "no organization with id 'nope'" in wrong.stderr


def test_migrate_creates_a_store_and_says_so_once(tmp_path: Path, user_home: Path) -> None:
    home = tmp_path / "new"
    first = heliograph(user_home, "migrate", "--home", home)
    assert first.returncode == 0, first.stderr
    assert f"Creating a new store at {home / 'heliograph.db'}" in first.stderr
    assert "revision" in first.stdout
    again = heliograph(user_home, "migrate", "--home", home)
    assert again.returncode == 0 and "Creating" not in again.stderr


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    """A home whose config.toml puts the store elsewhere and adds a custom price."""
    home = tmp_path / "configured"
    home.mkdir()
    store = tmp_path / "stores" / "from-config.db"
    (home / "config.toml").write_text(
        f'database_url = "sqlite:///{store}"\nport = 9321\n\n'
        '[[prices]]\nmodel = "acme-ft-1"\ninput_per_mtok = 2.0\noutput_per_mtok = 4.0\n'
    )
    return home


def test_config_toml_is_read_from_the_home_flag(
    config_home: Path, tmp_path: Path, user_home: Path
) -> None:
    other = tmp_path / "env-home"  # HELIOGRAPH_HOME points elsewhere: --home must win
    store = tmp_path / "stores" / "from-config.db"
    shown = heliograph(user_home, "settings", "--home", config_home, HELIOGRAPH_HOME=str(other))
    assert shown.returncode == 0, shown.stderr
    assert "HELIOGRAPH_PORT = 9321" in shown.stdout
    assert f"HELIOGRAPH_HOME = '{config_home}'" in shown.stdout
    migrated = heliograph(user_home, "migrate", "--home", config_home, HELIOGRAPH_HOME=str(other))
    assert migrated.returncode == 0, migrated.stderr
    assert f"Creating a new store at sqlite:///{store}" in migrated.stderr
    assert store.exists() and not (config_home / "heliograph.db").exists()
    listed = heliograph(user_home, "keys", "list", "--home", config_home)
    assert listed.returncode == 0, listed.stderr  # the store named by that config.toml
    price = heliograph(user_home, "prices", "check", "acme-ft-1", "--home", config_home)
    assert price.returncode == 0, price.stderr
    assert "override 'acme-ft-1'" in price.stdout and "$6.000000000" in price.stdout
    flag = heliograph(
        user_home, "keys", "list", "--home", config_home, "--database-url",
        f"sqlite:///{tmp_path / 'none.db'}",
    )  # fmt: skip
    assert flag.returncode == 1 and "none.db" in flag.stderr  # the flag beats config.toml


def test_without_home_the_default_is_dot_heliograph(user_home: Path) -> None:
    done = heliograph(user_home, "keys", "list")
    assert_refused(done, user_home / ".heliograph")
    assert not (user_home / ".heliograph").exists()


def test_bad_settings_are_named_without_a_traceback(tmp_path: Path, user_home: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[[alerts.rules]]\nname = "x"\nmetric = "nope"\nwindow = "5m"\n'
        'comparison = ">"\nthreshold = 1\n'
    )
    for args in (("serve", "--port", "1"), ("settings",), ("writer",)):
        done = heliograph(user_home, *args, "--home", home, HELIOGRAPH_WORKERS="many")
        assert done.returncode == 1, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
        assert "invalid settings" in done.stderr
        assert "workers (HELIOGRAPH_WORKERS): Input should be a valid integer" in done.stderr
        assert "alerts (HELIOGRAPH_ALERTS): alerts.rules[0].metric: must be one of" in done.stderr
    assert list(home.iterdir()) == [home / "config.toml"]  # nothing created
