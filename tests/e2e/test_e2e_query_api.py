"""Helicone's query API, as users run it: `heliograph serve` records real `openai` traffic
(streamed and not, two users), and `POST /v1/request/query` answers a user's records newest
first, as `GET /api/v1/requests` lists them, and sorts by a key some records lack with those
last, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, new_id

from conftest import create_pg_database, free_port
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    mock = MockUpstream().start()
    try:
        yield mock
    finally:
        mock.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: MockUpstream
) -> Iterator[Heliograph]:
    env = {"HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url}
    drop = None
    if request.param == "postgresql":
        url, drop = create_pg_database(request.getfixturevalue("pg_admin"))
        env["HELIOGRAPH_DATABASE_URL"] = url
    served = Heliograph(tmp_path / request.param, free_port(), env=env).start()
    try:
        yield served
    finally:
        served.stop()
        if drop is not None:
            drop()


def _query(server: Heliograph, body: dict[str, Any]) -> list[dict[str, Any]]:
    resp = httpx.post(
        server.base_url + "/v1/request/query",
        json=body,
        headers={"Authorization": f"Bearer {server.admin_key}"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["error"] is None
    rows: list[dict[str, Any]] = resp.json()["data"]
    return rows


def test_a_users_records_newest_first_and_missing_values_last(server: Heliograph) -> None:
    sent: dict[str, str] = {}
    with openai.OpenAI(base_url=server.url("v1"), api_key="sk-test", max_retries=0) as client:
        for i in range(6):
            rid, user = new_id(), ("ana" if i % 3 else "bo")
            headers = {"Helicone-Request-Id": rid, "Helicone-User-Id": user}
            messages = [{"role": "user", "content": f"Say {i}"}]
            if i % 2:
                stream = client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, stream=True, extra_headers=headers
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=messages, extra_headers=headers
                )
            sent[rid] = user
    stored = {rid: server.record(rid) for rid in sent}  # stored by the writer process
    ana = {rid for rid, user in sent.items() if user == "ana"}

    tree = {"request_response_rmt": {"user_id": {"equals": "ana"}}}
    page = _query(server, {"filter": tree, "limit": 100})
    assert {r["id"] for r in page} == ana
    listed = server.api("/api/v1/requests", user_id="ana", limit=100).json()["data"]
    assert [r["id"] for r in page] == [r["id"] for r in listed]  # newest first, both APIs
    times = [(stored[r["id"]]["created_at"], r["id"]) for r in page]
    assert times == sorted(times, reverse=True)

    page = _query(server, {"filter": "all", "sort": {"time_to_first_token": "asc"}, "limit": 100})
    assert {r["id"] for r in page} == set(sent)
    ttft = [stored[r["id"]]["ttft_ms"] for r in page]
    known = [t for t in ttft if t is not None]
    assert known and ttft[: len(known)] == sorted(known)  # ascending, the missing ones last
    assert all(t is None for t in ttft[len(known) :])
