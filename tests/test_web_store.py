"""The dashboard's store queries on both dialects: search, sorting, export batches, sessions,
and the analytics helpers the pages add."""

from __future__ import annotations

import time
import zlib
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from heliograph.store import analytics, search
from heliograph.store.inserts import insert_records
from heliograph.store.requests import RequestFilter

ORG = "org-1"
NOW = int(time.time() * 1000) - 3_600_000


def _row(i: int, **kw: Any) -> dict[str, Any]:
    row = {
        "id": f"r{i:03d}",
        "org_id": ORG,
        "key_id": None,
        "created_at": NOW + i * 1000,
        "kind": "llm",
        "provider": "openai",
        "upstream": "openai",
        "method": "POST",
        "endpoint": "/chat/completions",
        "model": "m-a" if i % 2 else "m-b",
        "response_model": None,
        "stream": False,
        "status": 200,
        "state": "ok",
        "error": None,
        "latency_ms": float(100 + i),
        "ttft_ms": None,
        "output_tokens_per_s": None,
        "prompt_tokens": i,
        "completion_tokens": 1,
        "total_tokens": i + 1,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "cost_nusd": i * 1000,
        "cost_known": i % 3 != 0,
        "user_id": f"u{i % 2}",
        "session_id": "s",
        "properties": None,
    }
    row.update(kw)
    return row


def _body(i: int, prompt: str, answer: str, path: str | None = None) -> dict[str, Any]:
    request = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    response = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
    headers = [["helicone-session-path", path]] if path else []
    return {
        "request_id": f"r{i:03d}",
        "encoding": "zlib",
        "request_body": zlib.compress(orjson.dumps(request)),
        "response_body": zlib.compress(orjson.dumps(response)),
        "request_headers": {"request": headers, "response": []},
        "truncated": False,
    }


def _fill(engine: Engine, n: int = 30) -> None:
    rows = [_row(i) for i in range(n)]
    bodies = [
        _body(i, "needle café" if i in (3, 17, 25) else f"prompt {i}", f"answer {i}", f"/p/{i % 3}")
        for i in range(n)
    ]
    bodies[5]["request_body"] = zlib.compress(b'{"messages": [{"content": "caf\\u00e9 escaped"}]}')
    with engine.begin() as conn:
        insert_records(conn, rows, bodies, [])
        insert_records(conn, [_row(999, org_id="other")], [_body(999, "needle", "x")], [])


def test_search_text_sort_and_scan_limit(engine: Engine) -> None:
    _fill(engine)
    page = search.search_requests(engine, ORG, RequestFilter(text="NEEDLE"), 10)
    assert [r["id"] for r in page.rows] == ["r025", "r017", "r003"] and page.next_cursor is None
    assert {
        r["id"] for r in search.search_requests(engine, ORG, RequestFilter(text="café"), 10).rows
    } == {
        "r003",
        "r005",
        "r017",
        "r025",
    }
    assert (
        search.search_requests(engine, ORG, RequestFilter(text="answer 7"), 5).rows[0]["id"]
        == "r007"
    )
    assert search.search_requests(engine, ORG, RequestFilter(text="assistant"), 5).rows == []
    # a small scan limit: partial pages with a cursor that continues, nothing skipped
    found: list[str] = []
    cursor = None
    stops = 0
    while True:
        page = search.search_requests(
            engine, ORG, RequestFilter(text="needle"), 10, cursor, scan_limit=4
        )
        found += [r["id"] for r in page.rows]
        stops += page.scan_stopped
        cursor = page.next_cursor
        if cursor is None:
            break
    assert found == ["r025", "r017", "r003"] and stops >= 5


def test_sorts_and_keyset_pages(engine: Engine) -> None:
    _fill(engine)
    for sort in search.SORTS:
        for ascending in (False, True):
            seen: list[dict[str, Any]] = []
            cursor = None
            while True:
                page = search.search_requests(
                    engine, ORG, RequestFilter(), 7, cursor, sort=sort, ascending=ascending
                )
                seen += page.rows
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert len({r["id"] for r in seen}) == 30, (sort, ascending)
            if sort == "cost":
                known = [r["cost_usd"] for r in seen if r["cost_usd"] is not None]
                assert known == sorted(known, reverse=not ascending)
                assert all(r["cost_usd"] is None for r in seen[len(known) :])  # unknown last
            if sort == "latency":
                values = [r["latency_ms"] for r in seen]
                assert values == sorted(values, reverse=not ascending)
    with pytest.raises(ValueError):
        search.search_requests(engine, ORG, RequestFilter(), 5, "garbage")
    with pytest.raises(ValueError):
        search.search_requests(engine, ORG, RequestFilter(), 5, sort="password")


def test_filters_iteration_and_sessions(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as conn:
        insert_records(conn, [_row(100, state="error", status=503, cost_known=False)], [], [])
    f = RequestFilter(errors_only=True)
    assert [r["id"] for r in search.search_requests(engine, ORG, f, 10).rows] == ["r100"]
    f = RequestFilter(status_class=5)
    assert [r["id"] for r in search.search_requests(engine, ORG, f, 10).rows] == ["r100"]
    f = RequestFilter(min_cost_nusd=20_000, max_cost_nusd=22_000)
    assert [r["id"] for r in search.search_requests(engine, ORG, f, 10).rows] == ["r022", "r020"]
    f = RequestFilter(min_latency_ms=125, max_latency_ms=126.5)
    assert [r["id"] for r in search.search_requests(engine, ORG, f, 10).rows] == ["r026", "r025"]
    everything = list(search.iter_requests(engine, ORG, RequestFilter(), batch=4))
    assert len(everything) == 31 and everything[0]["id"] == "r100"
    by_tokens = list(search.iter_requests(engine, ORG, RequestFilter(), sort="tokens", batch=4))
    assert by_tokens[0]["id"] == "r100" and by_tokens[-1]["id"] == "r000"
    timeline = search.session_requests(engine, ORG, "s")
    assert [r["id"] for r in timeline][:2] == ["r000", "r001"]
    assert timeline[4]["session_path"] == "/p/1" and timeline[-1]["session_path"] is None
    assert search.session_requests(engine, "other", "s")[0]["id"] == "r999"
    previews = search.request_bodies_for(engine, ORG, ["r003", "r999"])
    assert set(previews) == {"r003"} and b"needle" in (previews["r003"] or b"")


def test_page_analytics_helpers(engine: Engine) -> None:
    _fill(engine)
    since, until = NOW - 60_000, NOW + 3_600_000
    scoped = analytics.scoped_summary(engine, ORG, since, until, dimension="user_id", value="u1")
    assert scoped["requests"] == 15
    points = analytics.scoped_timeseries(
        engine, ORG, since, until, 600_000, dimension="model", value="m-a"
    )
    assert sum(p["requests"] for p in points) == 15 and len(points) == 7
    usage = analytics.requests_by(engine, ORG, "model", ["m-a", "m-b"], since, until, 600_000)
    assert sum(usage["m-a"]) == 15 and sum(usage["m-b"]) == 15 and len(usage["m-a"]) == 7
    assert usage["m-a"][0] == 15  # all within the first ten minutes
    top = analytics.top_pairs(engine, ORG, "user_id", "model", ["u0", "u1"], since, until)
    assert top == {"u0": [("m-b", 15)], "u1": [("m-a", 15)]}
    assert analytics.auto_bucket(3_600_000) == 60_000 and analytics.auto_bucket(10**13) > 0
    with pytest.raises(ValueError):
        analytics.top_pairs(engine, ORG, "password", "model", ["x"], since, until)
