"""Shared fixtures: real servers on loopback (gateway, mock upstream), both store dialects."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine

sys.path.insert(0, str(Path(__file__).parent))

from heliograph.app import create_app
from heliograph.auth.keys import create_key
from heliograph.config import Settings
from heliograph.store import orgs
from heliograph.store.engine import make_engine, migrate
from mock_upstream import MockUpstream

PG_ADMIN_URL = os.environ.get("HELIOGRAPH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_available() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc)


def redis_ready(url: str) -> str:
    """``url`` once its Redis answers, emptied: CI fails without one, elsewhere the test skips."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=2)
        client.ping()
        client.flushdb()
        client.close()
    except Exception as exc:
        if IN_CI:
            pytest.fail(f"Redis is required in CI but unreachable: {exc}")
        pytest.skip(f"Redis not reachable at {url}: {exc}")
    return url


@pytest.fixture(scope="session")
def pg_admin() -> str:
    problem = _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required in CI but unreachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {problem}")
    return PG_ADMIN_URL


def create_pg_database(admin_url: str) -> tuple[str, Any]:
    import psycopg

    name = f"hg_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin_url.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url, drop


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store on each dialect."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    url, drop = create_pg_database(admin)
    try:
        yield url
    finally:
        drop()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on a fresh, migrated store (each dialect)."""
    eng = make_engine(db_url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()


@pytest.fixture(scope="session")
def mock() -> Iterator[MockUpstream]:
    upstream = MockUpstream()
    upstream.start()
    try:
        yield upstream
    finally:
        upstream.stop()


@dataclass
class Org:
    id: str
    write_key: str
    read_key: str
    admin_key: str


def make_org(engine: Any, name: str) -> Org:
    org_id = orgs.create_org(engine, name)
    return Org(
        org_id,
        create_key(engine, org_id=org_id, name="w", scope="write")[1],
        create_key(engine, org_id=org_id, name="r", scope="read")[1],
        create_key(engine, org_id=org_id, name="a", scope="admin")[1],
    )


def clone_org(engine: Any, org: Org, name: str) -> None:
    """The same organization and keys in another store (for replicas with separate stores)."""
    from sqlalchemy import insert, select

    from heliograph.auth.keys import display_prefix, hash_key
    from heliograph.store.schema import api_keys, organizations

    with engine.begin() as conn:
        if conn.execute(select(organizations.c.id).where(organizations.c.id == org.id)).first():
            return
        conn.execute(insert(organizations).values(id=org.id, name=name, created_at=0))
        for scope, key in (
            ("write", org.write_key),
            ("read", org.read_key),
            ("admin", org.admin_key),
        ):
            conn.execute(
                insert(api_keys).values(
                    id=str(uuid.uuid4()),
                    org_id=org.id,
                    name=scope,
                    scope=scope,
                    prefix=display_prefix(key),
                    key_hash=hash_key(key),
                    created_at=0,
                )
            )


class LiveGateway:
    """A Heliograph app served by uvicorn on a loopback port, in a background thread."""

    def __init__(
        self, settings: Settings, reuse_orgs_from: LiveGateway | None = None, **app_kwargs: Any
    ) -> None:
        self.settings = settings
        engine = make_engine(settings.sqlalchemy_url)
        migrate(engine)
        if reuse_orgs_from is None:
            self.org = make_org(engine, "org-a")
            self.other = make_org(engine, "org-b")
        else:
            self.org, self.other = reuse_orgs_from.org, reuse_orgs_from.other
            clone_org(engine, self.org, "org-a")
            clone_org(engine, self.other, "org-b")
        engine.dispose()
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, **app_kwargs)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveGateway:
        self.thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.server.started:
                return self
            time.sleep(0.02)
        raise RuntimeError("gateway did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)

    @property
    def openai_url(self) -> str:
        return f"{self.base_url}/v1/{self.org.write_key}"

    def api(self, path: str, key: str | None = None, **params: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.org.read_key}"}
        return httpx.get(self.base_url + path, headers=headers, params=params, timeout=10)

    def records(self, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
        resp = self.api("/api/v1/requests", key, limit=1000, **params)
        resp.raise_for_status()
        data: list[dict[str, Any]] = resp.json()["data"]
        return data

    def wait_records(self, n: int, timeout: float = 10.0, **params: Any) -> list[dict[str, Any]]:
        """Poll the read API until at least ``n`` records are visible."""
        deadline = time.monotonic() + timeout
        rows: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            rows = self.records(**params)
            if len(rows) >= n:
                return rows
            time.sleep(0.05)
        raise AssertionError(f"expected {n} records, saw {len(rows)}: {rows}")

    def record(self, rid: str) -> dict[str, Any]:
        resp = self.api(f"/api/v1/requests/{rid}")
        resp.raise_for_status()
        out: dict[str, Any] = resp.json()
        return out


def gateway_settings(tmp_path: Path, db: str, upstream: str, **extra: Any) -> Settings:
    options: dict[str, Any] = {"writer": "embedded", "writer_poll_interval": 0.02, **extra}
    return Settings(
        home=tmp_path / "home",
        database_url=db,
        upstreams={"openai": {"url": upstream}, **options.pop("upstreams", {})},
        **options,
    )


@pytest.fixture
def gateway(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    """A gateway on SQLite in front of the mock upstream."""
    mock.reset()
    gw = LiveGateway(
        gateway_settings(tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", mock.url)
    ).start()
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def gateway_any(tmp_path: Path, mock: MockUpstream, db_url: str) -> Iterator[LiveGateway]:
    """The same, once per store dialect."""
    mock.reset()
    gw = LiveGateway(gateway_settings(tmp_path, db_url, mock.url)).start()
    try:
        yield gw
    finally:
        gw.stop()
