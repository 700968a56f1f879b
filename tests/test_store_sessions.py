"""store.sessions on both dialects: the sessions list (search, SQL sort, a keyset cursor that
stays correct as sessions arrive), latest session names, bodies, and one user's models."""

from __future__ import annotations

import time
import zlib
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from heliograph.store import sessions
from heliograph.store.end_users import upsert
from heliograph.store.inserts import insert_records

ORG = "org-1"
T0 = int(time.time() * 1000) - 3_600_000


def _row(rid: str, session: str | None, at: int, **kw: Any) -> dict[str, Any]:
    row = {
        "id": rid,
        "org_id": ORG,
        "key_id": None,
        "created_at": T0 + at,
        "kind": "llm",
        "provider": "openai",
        "upstream": "openai",
        "method": "POST",
        "endpoint": "/chat/completions",
        "model": "m-a",
        "response_model": None,
        "stream": False,
        "status": 200,
        "state": "ok",
        "error": None,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "output_tokens_per_s": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "cost_nusd": 1000,
        "cost_known": True,
        "user_id": "u1",
        "session_id": session,
        "properties": None,
    }
    row.update(kw)
    return row


def _body(rid: str, prompt: str = "p", answer: str = "a") -> dict[str, Any]:
    request = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    response = {"choices": [{"message": {"role": "assistant", "content": answer}}]}
    return {
        "request_id": rid,
        "encoding": "zlib",
        "request_body": zlib.compress(orjson.dumps(request)),
        "response_body": zlib.compress(orjson.dumps(response)),
        "request_headers": {"request": [], "response": []},
        "truncated": False,
    }


def _insert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        insert_records(conn, rows, [_body(r["id"]) for r in rows], [])


def _fill(engine: Engine) -> None:
    rows = [
        # s-a: three requests over 2 s, one failed, one unpriced, named twice (latest wins)
        _row("a1", "s-a", 0, session_name="Old title", prompt_tokens=1, completion_tokens=1),
        _row("a2", "s-a", 1000, state="error", status=500, cost_known=False, cost_nusd=None),
        _row("a3", "s-a", 2000, session_name="A trip to Oslo", latency_ms=500.0),
        # s-b: one big request from another user
        _row("b1", "s-b", 5000, user_id="u2", prompt_tokens=900, cost_nusd=90_000),
        # s-c: two cheap requests
        _row("c1", "s-c", 3000, cost_nusd=10),
        _row("c2", "s-c", 4000, cost_nusd=10, user_id="u3", user_name="Zoë Quill"),
        _row("n1", None, 6000),  # no session
        _row("x1", "s-a", 100, org_id="other"),  # another organization
        _row("old", "s-old", -10 * 86_400_000),  # outside the window
    ]
    _insert(engine, rows)


def _page(engine: Engine, **kw: Any) -> sessions.SessionPage:
    now = kw.pop("now_ms", T0 + 3_600_000)
    return sessions.list_sessions(engine, ORG, T0 - 60_000, T0 + 3_600_000, now_ms=now, **kw)


def _ids(page: sessions.SessionPage) -> list[str]:
    return [r["session_id"] for r in page.rows]


def test_list_columns_names_and_sorts(engine: Engine) -> None:
    _fill(engine)
    page = _page(engine)
    assert _ids(page) == ["s-b", "s-c", "s-a"] and page.total == 3 and page.next_cursor is None
    a = next(r for r in page.rows if r["session_id"] == "s-a")
    assert a["name"] == "A trip to Oslo"  # the latest name, not the first nor the largest
    assert (a["requests"], a["errors"], a["unpriced"], a["users"]) == (3, 1, 1, 1)
    assert a["first"] == T0 and a["last"] == T0 + 2000
    assert a["duration"] == 2500  # to the end of the last request
    assert a["tokens"] == 2 + 15 + 15 and a["cost"] == 2000 and a["cost_usd"] == 2000 / 1e9
    c = next(r for r in page.rows if r["session_id"] == "s-c")
    assert c["users"] == 2 and c["name"] is None
    assert _ids(_page(engine, sort="cost")) == ["s-b", "s-a", "s-c"]
    assert _ids(_page(engine, sort="cost", descending=False)) == ["s-c", "s-a", "s-b"]
    assert _ids(_page(engine, sort="requests")) == ["s-a", "s-c", "s-b"]
    assert _ids(_page(engine, sort="tokens")) == ["s-b", "s-a", "s-c"]
    assert _ids(_page(engine, sort="errors"))[0] == "s-a"
    assert _ids(_page(engine, sort="duration")) == ["s-a", "s-c", "s-b"]
    assert _ids(_page(engine, sort="first", descending=False)) == ["s-a", "s-c", "s-b"]
    with pytest.raises(ValueError):
        _page(engine, sort="name; drop table requests")


def test_search_by_id_name_and_user(engine: Engine) -> None:
    _fill(engine)
    with engine.begin() as conn:
        upsert(conn, [(ORG, "u2", "Bea Hill", "bea@example.com", None, None, None, "jwt", T0, T0)])
    assert _ids(_page(engine, text="oslo")) == ["s-a"]  # name, case-insensitive
    assert _ids(_page(engine, text="S-C")) == ["s-c"]  # session id
    assert _ids(_page(engine, text="zoë")) == ["s-c"]  # the user's name on a record
    assert _ids(_page(engine, text="bea@")) == ["s-b"]  # the directory's email of the user
    assert _ids(_page(engine, text="u1")) == ["s-c", "s-a"]
    assert _page(engine, text="%").rows == []  # LIKE wildcards are text
    assert _page(engine, text="_").rows == []
    assert _page(engine, text="a\x00").rows == []
    found = _page(engine, text="oslo").rows[0]
    assert found["requests"] == 3  # a match on one record counts the whole session


def test_keyset_pages_stay_correct_as_sessions_arrive(engine: Engine) -> None:
    rows = [_row(f"r{i}", f"s-{i:02d}", i * 1000, cost_nusd=(i % 4) * 100) for i in range(11)]
    _insert(engine, rows)
    now = T0 + 20_000
    for sort, descending in (("last", True), ("cost", True), ("cost", False), ("requests", True)):
        seen: list[str] = []
        page = _page(engine, sort=sort, descending=descending, limit=4, now_ms=now)
        first = _ids(page)
        seen += first
        # new sessions arrive, and an old session gets a new request, after the first page
        _insert(engine, [_row(f"new{sort}{descending}", f"s-new-{sort}", 25_000, cost_nusd=10**9)])
        _insert(engine, [_row(f"more{sort}{descending}", "s-00", 26_000)])
        while page.next_cursor:
            page = _page(engine, sort=sort, descending=descending, limit=4, cursor=page.next_cursor)
            assert page.total == 11  # as of the first page
            seen += _ids(page)
        assert sorted(seen) == [f"s-{i:02d}" for i in range(11)], (sort, seen)
        assert len(seen) == len(set(seen))
    # a fresh first page shows what arrived (three new sessions, s-00 now the latest)
    fresh = _page(engine, now_ms=T0 + 30_000, limit=50)
    assert fresh.total == 14 and _ids(fresh)[0] == "s-00"
    with pytest.raises(ValueError):
        _page(engine, sort="cost", cursor="not-a-cursor")
    cursor = _page(engine, sort="cost", limit=2).next_cursor
    assert cursor is not None
    with pytest.raises(ValueError):  # a cursor of another order
        _page(engine, sort="last", cursor=cursor)


def test_bodies_and_names_stay_in_the_organization(engine: Engine) -> None:
    _fill(engine)
    got = sessions.bodies(engine, ORG, ["a1", "x1", "missing"])
    assert set(got) == {"a1"}
    request, response = got["a1"]
    assert request is not None and b'"content":"p"' in request
    assert response is not None and b"assistant" in response
    assert sessions.session_names(engine, "other", ["s-a"]) == {}
    assert sessions.session_names(engine, ORG, ["s-a", "s-b", "x\x00"]) == {"s-a": "A trip to Oslo"}


def test_user_models_with_percentiles(engine: Engine) -> None:
    rows = [
        _row(f"u{i}", None, i * 1000, model="m-a", latency_ms=float(100 + i)) for i in range(20)
    ]
    rows += [_row("v1", None, 500, model="m-b", latency_ms=None, cost_known=False)]
    rows += [_row("v2", None, 600, model=None, state="error", latency_ms=20_000.0)]
    rows += [_row("w1", None, 700, user_id="other-user")]
    _insert(engine, rows)
    got = sessions.user_models(engine, ORG, "u1", T0 - 1, T0 + 3_600_000)
    assert set(got) == {"m-a", "m-b", None}
    a = got["m-a"].to_api()
    assert a["requests"] == 20 and a["total_tokens"] == 300 and a["cost_usd"] == 20_000 / 1e9
    assert a["avg_latency_ms"] == pytest.approx(109.5)
    assert a["p50_latency_ms"] is not None and 100 <= a["p50_latency_ms"] <= 200
    b = got["m-b"].to_api()
    assert b["p50_latency_ms"] is None and b["unpriced_requests"] == 1
    assert got[None].to_api()["errors"] == 1
    assert got[None].to_api()["p95_latency_ms"] is not None
    assert sessions.user_models(engine, ORG, "u\x00", T0, T0 + 1) == {}


@pytest.mark.parametrize("batch", [2, 500])
def test_latest_first_walk_pages_through_ties(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    """The default order (latest activity first) walks records back in time instead of
    aggregating every session: ties on the last time, sessions with records on both sides
    of a page boundary, and walks over several batches give the full aggregate's order."""
    monkeypatch.setattr(sessions, "WALK_BATCH", batch)
    # seven sessions tied; their record ids run against their session ids
    rows = [_row(f"t{9 - i}", f"s-{i:02d}", 5000) for i in range(7)]
    rows += [_row(f"l{i}", "long", at) for i, at in enumerate((0, 1000, 9000, 5000, 5000))]
    rows += [_row("o1", "old", 100), _row("o2", "old", 4000), _row("o3", "old", 200)]
    rows += [_row("x", "other-org", 8000, org_id="other")]
    _insert(engine, rows)
    want = ["long", *[f"s-{i:02d}" for i in reversed(range(7))], "old"]
    full = _page(engine, sort="last", text="s")  # a search takes the full aggregate path
    assert [r for r in _ids(full) if r in want] == [w for w in want if "s" in w]
    for limit in (1, 2, 3, 20):
        seen: list[str] = []
        page = _page(engine, limit=limit)
        seen += _ids(page)
        while page.next_cursor:
            page = _page(engine, limit=limit, cursor=page.next_cursor)
            seen += _ids(page)
        assert seen == want, (limit, seen)
    first = _page(engine, limit=3)
    assert [r["requests"] for r in first.rows] == [5, 1, 1]  # whole sessions, not the walk
    assert first.rows[0]["first"] == T0 and first.rows[0]["last"] == T0 + 9000
