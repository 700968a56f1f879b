"""Records written straight into a store, for query, feedback and export tests.

Going through the writer would take seconds per thousand rows and hide the exact values;
these tests are about reading, so they insert rows with the store's own ``insert_records``.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Engine

from heliograph.store.feedback import set_feedback, set_scores
from heliograph.store.inserts import insert_batch, pack_records

T0 = int(time.time() * 1000) - 86_400_000


def row(org_id: str, i: int, **kw: Any) -> dict[str, Any]:
    out = {
        "id": str(uuid.UUID(int=i + 1)),
        "org_id": org_id,
        "key_id": None,
        "created_at": T0 + i * 1000,
        "kind": "llm",
        "provider": "openai",
        "upstream": "openai",
        "method": "POST",
        "endpoint": "/v1/chat/completions",
        "model": "gpt-4o",
        "response_model": None,
        "stream": False,
        "status": 200,
        "state": "ok",
        "error": None,
        "latency_ms": 100.0,
        "ttft_ms": None,
        "output_tokens_per_s": None,
        "prompt_tokens": None,
        "completion_tokens": None,
        "total_tokens": None,
        "cached_tokens": None,
        "reasoning_tokens": None,
        "cost_nusd": None,
        "cost_known": False,
        "user_id": None,
        "session_id": None,
        "properties": None,
        "cache_hit": False,
    }
    out.update(kw)
    return out


def insert(engine: Engine, rows: list[dict[str, Any]], bodies: bool = False) -> None:
    """Insert rows; their ``properties`` and ``user_groups`` also go to their side tables, as
    the writer does."""
    props = [
        {"request_id": r["id"], "name": k, "value": v, "org_id": r["org_id"]}
        for r in rows
        for k, v in (r["properties"] or {}).items()
    ]
    body_rows = [body(r["id"], f"prompt {r['id']}") for r in rows] if bodies else []
    groups = [
        {"request_id": r["id"], "name": g, "org_id": r["org_id"]}
        for r in rows
        for g in r.get("user_groups") or ()
    ]
    with engine.begin() as conn:
        insert_batch(conn, pack_records(rows, body_rows, props, groups))


def body(rid: str, prompt: str) -> dict[str, Any]:
    request = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    response = {"choices": [{"message": {"role": "assistant", "content": "=1+1"}}]}
    return {
        "request_id": rid,
        "encoding": "zlib",
        "request_body": zlib.compress(orjson.dumps(request)),
        "response_body": zlib.compress(orjson.dumps(response)),
        "request_headers": {"request": [], "response": []},
        "truncated": False,
    }


def many(org_id: str, n: int, start: int = 0) -> Iterator[dict[str, Any]]:
    """``n`` rows, several per millisecond so keyset ties are exercised."""
    for i in range(start, start + n):
        yield row(
            org_id,
            i,
            created_at=T0 + i // 3,
            model=f"model-{i % 7}",
            user_id=f"user-{i % 11}",
            properties={"batch": str(i % 5)},
            prompt_tokens=i,
            total_tokens=i + 1,
        )


def dataset(engine: Engine, org_id: str, other_org: str) -> dict[str, str]:
    """A small, varied set of records; returns name -> id. See test_query_api for its use."""
    rows = {
        "r0": row(org_id, 0, model="gpt-4o", user_id="alice", latency_ms=100.0, ttft_ms=50.0,
                  properties={"team": "Red", "env": "prod"}, cost_nusd=2_000_000,
                  cost_known=True, prompt_tokens=10, completion_tokens=20, total_tokens=30,
                  session_id="s1"),
        "r1": row(org_id, 1, model="gpt-4o-mini", user_id="bob", status=500, state="error",
                  latency_ms=250.5, properties={"team": "blue"}, cost_nusd=0),
        "r2": row(org_id, 2, model="claude-3_5%sonnet", provider="anthropic",
                  upstream="anthropic", latency_ms=None, cache_hit=True, cost_nusd=0,
                  cost_known=True, endpoint="/v1/messages"),
        "r3": row(org_id, 3, model="GPT-4O", user_id="Alice", status=429, state="error",
                  latency_ms=80.0, kind="other"),
        "x9": row(other_org, 9, model="gpt-4o", user_id="alice", properties={"team": "Red"},
                  cost_nusd=5_000_000, cost_known=True, total_tokens=99),
    }  # fmt: skip
    insert(engine, list(rows.values()))
    ids = {name: r["id"] for name, r in rows.items()}
    set_feedback(engine, org_id, ids["r0"], True)
    set_feedback(engine, org_id, ids["r1"], False)
    set_feedback(engine, other_org, ids["x9"], True)
    set_scores(engine, org_id, ids["r0"], {"accuracy": 5, "helpful": 1})
    set_scores(engine, org_id, ids["r3"], {"accuracy": 2})
    set_scores(engine, other_org, ids["x9"], {"accuracy": 9})
    return ids
