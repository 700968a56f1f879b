"""Retention, as users run it: `heliograph serve` records real `openai` traffic, some records
are made old in the store, a policy is set through `PUT /api/v1/retention` (or config.toml),
and `heliograph retention run` (or the job process, on its interval) deletes exactly the old
data: records past the records limit with everything hanging off them, bodies past the bodies
limit with their records kept, and nothing younger.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, clean_environment, heliograph_command, marker, new_id

from conftest import create_pg_database, free_port
from heliograph.store.partitions import Month
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

DAY_MS = 86_400_000


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    mock = MockUpstream().start()
    try:
        yield mock
    finally:
        mock.stop()


def _chat(server: Heliograph, n: int) -> dict[str, str]:
    """``n`` chats through the gateway with the real openai client: record id -> its text."""
    sent = {}
    with openai.OpenAI(base_url=server.url("v1"), api_key="sk-test", max_retries=0) as client:
        for _ in range(n):
            text, rid = marker(), new_id()
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": f"Say {text}"}],
                extra_headers={"Helicone-Request-Id": rid},
            )
            sent[rid] = text
    for rid in sent:
        server.record(rid)  # stored by the writer process
    return sent


def _status(server: Heliograph, rid: str) -> int:
    return server.api(f"/api/v1/requests/{rid}").status_code


def _cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*heliograph_command(), "retention", *args],
        env={**clean_environment(), "HELIOGRAPH_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _wait_first_pass(home: Path, **env: str) -> None:
    """The job process runs a pass when it starts (there is none on record); wait for it, so
    it cannot apply a policy this test sets afterwards before the CLI does."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = _cli(home, "show", **env)
        if shown.returncode == 0 and "Last pass of a job process: never" not in shown.stdout:
            return
        time.sleep(0.5)
    raise AssertionError("the job process ran no retention pass within 60 s")


def _put(server: Heliograph, key: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.put(
        f"{server.base_url}/api/v1/retention",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    )


def test_cli_run_deletes_exactly_the_old_data_on_sqlite(
    tmp_path: Path, upstream: MockUpstream
) -> None:
    home = tmp_path / "home"
    env = {"HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url}
    server = Heliograph(home, free_port(), env=env).start()
    try:
        sent = _chat(server, 6)
        ids = list(sent)
        old, aging, young = ids[:2], ids[2], ids[3:]
        _wait_first_pass(home)
        now = int(time.time() * 1000)
        with sqlite3.connect(home / "heliograph.db") as db:  # the store the writer filled
            db.executemany(
                "UPDATE requests SET created_at = ? WHERE id = ?",
                [(now - 100 * DAY_MS, rid) for rid in old] + [(now - 20 * DAY_MS, aging)],
            )
        policy = {"bodies_days": 10, "records_days": 60}
        assert _put(server, server.write_key, policy).status_code in (401, 403)
        put = _put(server, server.admin_key, policy)
        assert put.status_code == 200, put.text
        assert put.json()["records_days"] == 60
        dry = _cli(home, "run", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "would delete 2 records and 3 bodies" in dry.stdout
        assert all(_status(server, rid) == 200 for rid in ids)  # a dry run deletes nothing
        done = _cli(home, "run")
        assert done.returncode == 0, done.stderr
        assert "2 requests" in done.stdout and "3 request_bodies" in done.stdout, done.stdout
        for rid in old:
            assert _status(server, rid) == 404
        kept = server.record(aging)
        assert kept["request_body"] is None and kept["response_body"] is None
        assert kept["prompt_tokens"] and kept["model"] == "gpt-4o-mini"  # the record stays
        for rid in young:
            body = server.record(rid)["request_body"]
            assert sent[rid] in str(body)
        listed = server.api("/api/v1/requests", limit=100).json()["data"]
        assert {r["id"] for r in listed} == {aging, *young}
        shown = _cli(home, "show")
        assert shown.returncode == 0, shown.stderr
        assert "bodies:  10 days (override)" in shown.stdout
        assert "rollups: never (default)" in shown.stdout
        assert "due now: 0 records, 0 bodies" in shown.stdout
    finally:
        server.stop()


def test_job_process_applies_the_policy_on_postgresql(
    tmp_path: Path, upstream: MockUpstream, pg_admin: str
) -> None:
    url, drop = create_pg_database(pg_admin)
    home = tmp_path / "pg-home"
    home.mkdir()
    (home / "config.toml").write_text("retention_records_days = 30\n")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_DATABASE_URL": url,
        "HELIOGRAPH_RETENTION_INTERVAL_S": "1",
    }
    server = Heliograph(home, free_port(), env=env).start()
    try:
        ids = list(_chat(server, 4))
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE requests SET created_at = %s WHERE id = ANY(%s)",
                (int(time.time() * 1000) - 40 * DAY_MS, ids[:2]),
            )
        got = server.api("/api/v1/retention").json()
        assert got["records_days"] == 30 and got["sources"]["records_days"] == "default"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_status(server, r) != 404 for r in ids[:2]):
            time.sleep(0.5)
        assert [_status(server, r) for r in ids] == [404, 404, 200, 200], server.output()[-3000:]
        ahead = Month.of(int(time.time() * 1000)).next().next()  # made by the job process
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT to_regclass(%s)::text, to_regclass(%s)::text",
                (ahead.name("requests"), ahead.name("request_bodies")),
            ).fetchone()
        assert found == (ahead.name("requests"), ahead.name("request_bodies"))
    finally:
        server.stop()
        drop()


def test_cli_drops_whole_months_on_postgresql(
    tmp_path: Path, upstream: MockUpstream, pg_admin: str
) -> None:
    """PostgreSQL stores records and bodies in monthly partitions: records made old land in
    the default partition, `heliograph retention run` gives their month a partition and, as
    every organization's policy has passed it, drops the month whole."""
    url, drop = create_pg_database(pg_admin)
    home = tmp_path / "pg-months"
    env = {"HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url, "HELIOGRAPH_DATABASE_URL": url}
    server = Heliograph(home, free_port(), env=env).start()
    try:
        sent = _chat(server, 4)
        ids = list(sent)
        old, young = ids[:2], ids[2:]
        _wait_first_pass(home, HELIOGRAPH_DATABASE_URL=url)
        import psycopg

        then = int(time.time() * 1000) - 200 * DAY_MS
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE requests SET created_at = %s WHERE id = ANY(%s)", (then, old))
            conn.execute(
                "UPDATE request_bodies SET created_at = %s WHERE request_id = ANY(%s)", (then, old)
            )
            waiting = conn.execute("SELECT count(*) FROM requests_default").fetchone()
        assert waiting == (2,)  # no partition held that month: the rows wait in the default
        shown = _cli(home, "show", HELIOGRAPH_DATABASE_URL=url)
        assert shown.returncode == 0, shown.stderr
        assert "2 rows in the default partition" in shown.stdout, shown.stdout
        put = _put(server, server.admin_key, {"bodies_days": 30, "records_days": 60})
        assert put.status_code == 200, put.text
        done = _cli(home, "run", HELIOGRAPH_DATABASE_URL=url)
        assert done.returncode == 0, done.stderr
        month = time.strftime("%Y%m", time.gmtime(then / 1000))
        assert f"Made partitions requests_p{month}" in done.stdout, done.stdout
        assert "Dropped whole months" in done.stdout and f"requests_p{month}" in done.stdout
        assert "2 requests" in done.stdout and "2 request_bodies" in done.stdout, done.stdout
        assert [_status(server, r) for r in ids] == [404, 404, 200, 200]
        for rid in young:
            assert sent[rid] in str(server.record(rid)["request_body"])
        with psycopg.connect(url, autocommit=True) as conn:
            guard = conn.execute("SELECT request_id FROM request_ids ORDER BY 1").fetchall()
            gone = conn.execute("SELECT to_regclass(%s)", (f"requests_p{month}",)).fetchone()
        assert guard == sorted((r,) for r in young)
        assert gone == (None,)
    finally:
        server.stop()
        drop()
