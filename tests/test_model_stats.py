"""Per-model figures on both dialects (store.model_stats): local and cloud subtotals, a model
served both ways, a model's trend and latency histogram, its users, and comparisons.

The window starts and ends inside hours, so each figure is the sum of rollup rows (whole
hours) and raw rows (the edges): the same numbers either way.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Engine

from heliograph.store import model_stats
from heliograph.store.rollups import HOUR_MS
from query_support import insert, row

ORG = "org-models"
H0 = (int(time.time() * 1000) - 12 * HOUR_MS) // HOUR_MS * HOUR_MS
SINCE, UNTIL = H0 - HOUR_MS // 2, H0 + 4 * HOUR_MS + HOUR_MS // 3
BUCKET = HOUR_MS


def _local(upstream: str, provider: str) -> bool:
    return upstream == "gpu-box" or provider == "ollama"


def _records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(at: int, **kw: Any) -> None:
        out.append(row(ORG, len(out), created_at=at, **kw))

    # llama3.2 on the local Ollama: 8 calls over five hours (some in the ragged edges),
    # 800 ms, 20 tok/s; the second is a cold start (2 s load); one fails.
    for i, at in enumerate([SINCE + 60_000, *(H0 + h * HOUR_MS + 5_000 for h in range(5))]):
        add(
            at,
            provider="ollama",
            upstream="ollama",
            model="llama3.2",
            latency_ms=800.0,
            ttft_ms=300.0,
            output_tokens_per_s=20.0,
            prompt_tokens_per_s=400.0,
            load_ms=2000.0 if i == 1 else 15.0,
            prompt_tokens=10,
            completion_tokens=20,
            cost_known=True,
            cost_nusd=0,
            user_id="alice" if i % 2 else "bob",
        )
    add(UNTIL - 60_000, provider="ollama", upstream="ollama", model="llama3.2", latency_ms=800.0)
    add(
        H0 + 30_000,
        provider="ollama",
        upstream="ollama",
        model="llama3.2",
        state="error",
        latency_ms=None,
    )
    # the same model from a cloud host: 2 calls, 150 ms, 100 tok/s, priced
    for h in (1, 2):
        add(
            H0 + h * HOUR_MS + 9_000,
            provider="openai",
            upstream="groq",
            model="llama3.2",
            latency_ms=150.0,
            output_tokens_per_s=100.0,
            prompt_tokens=10,
            completion_tokens=20,
            cost_known=True,
            cost_nusd=3_000,
            user_id="carol",
        )
    # gpt-4o in the cloud: 3 calls at 4.5 s; one without a user
    for h, user in ((0, "alice"), (3, None), (4, "alice")):
        add(
            H0 + h * HOUR_MS + 20_000,
            provider="openai",
            upstream="openai",
            model="gpt-4o",
            latency_ms=4500.0,
            prompt_tokens=100,
            completion_tokens=50,
            cost_known=True,
            cost_nusd=1_000_000,
            user_id=user,
        )
    # outside the window, another organization, and a non-LLM call: never counted
    add(SINCE - 1, model="llama3.2", provider="ollama", upstream="ollama")
    add(UNTIL, model="llama3.2", provider="ollama", upstream="ollama")
    out.append(row("other-org", 900, created_at=H0 + 1000, model="llama3.2"))
    add(H0 + 2000, model="llama3.2", provider="ollama", upstream="ollama", kind="models")
    return out


@pytest.fixture
def store(engine: Engine) -> Engine:
    insert(engine, _records())
    return engine


def test_servings_split_local_and_cloud(store: Engine) -> None:
    got = model_stats.servings(store, ORG, SINCE, UNTIL, _local)
    models = {m["key"]: m for m in got["models"]}
    assert [m["key"] for m in got["models"]] == ["llama3.2", "gpt-4o"]
    llama = models["llama3.2"]
    assert llama["requests"] == 10 and llama["errors"] == 1 and llama["where"] == "both"
    assert [(u["upstream"], u["local"], u["requests"]) for u in llama["upstreams"]] == [
        ("ollama", True, 8),
        ("groq", False, 2),
    ]
    assert llama["providers"] == ["ollama", "openai"]
    assert models["gpt-4o"]["where"] == "cloud"
    local, cloud = got["sides"]["local"], got["sides"]["cloud"]
    assert (local["requests"], local["models"], local["cost_usd"]) == (8, 1, 0.0)
    assert (cloud["requests"], cloud["models"]) == (5, 2)
    assert cloud["cost_usd"] == pytest.approx(0.003006)
    assert local["cold_starts"] == 1 and cloud["cold_starts"] == 0
    assert (
        750 < local["p50_latency_ms"] <= 1000 and 4000 < models["gpt-4o"]["p50_latency_ms"] <= 5000
    )
    assert 15 < local["p50_output_tokens_per_s"] <= 20
    [both] = got["both"]
    assert both["key"] == "llama3.2" and both["requests"] == 10
    assert (both["local"]["requests"], both["cloud"]["requests"]) == (8, 2)
    assert 750 < both["local"]["p50_latency_ms"] <= 1000
    assert 100 < both["cloud"]["p50_latency_ms"] <= 200
    assert both["cloud"]["cost_usd"] == pytest.approx(6e-6)
    # nothing local: the local side is empty, not missing
    none_local = model_stats.servings(store, ORG, SINCE, UNTIL, lambda u, p: False)
    assert none_local["sides"]["local"]["requests"] == 0 and none_local["both"] == []


def test_a_models_trend_histogram_and_upstreams(store: Engine) -> None:
    got = model_stats.trend(store, ORG, SINCE, UNTIL, BUCKET, "llama3.2")
    points = got["points"]
    assert len(points) == 5 and points[0]["start_ms"] == SINCE
    assert [p["requests"] for p in points] == [3, 2, 2, 1, 2]
    assert sum(p["requests"] for p in points) == got["totals"]["requests"] == 10
    assert got["totals"]["cold_starts"] == 1 and got["totals"]["avg_cold_load_ms"] == 2000.0
    assert got["totals"]["errors"] == 1
    assert got["totals"]["avg_prompt_tokens_per_s"] == 400.0
    assert got["totals"]["p10_output_tokens_per_s"] is not None
    hist = got["latency_histogram"]
    assert sum(b["count"] for b in hist) == 9  # the failed call has no latency
    assert [(b["low_ms"], b["high_ms"], b["count"]) for b in hist if b["count"]] == [
        (100, 200, 2),
        (750, 1000, 7),
    ]
    assert list(got["upstreams"]) == ["ollama", "groq"]
    assert got["upstreams"]["groq"]["totals"]["requests"] == 2
    assert got["upstreams"]["groq"]["providers"] == ["openai"]
    assert [p["requests"] for p in got["upstreams"]["groq"]["points"]] == [0, 1, 1, 0, 0]
    one = model_stats.trend(store, ORG, SINCE, UNTIL, BUCKET, "llama3.2", "groq")
    assert one["totals"]["requests"] == 2 and list(one["upstreams"]) == ["groq"]
    assert 100 < one["totals"]["p95_latency_ms"] <= 200
    empty = model_stats.trend(store, ORG, SINCE, UNTIL, BUCKET, "no-such\x00model")
    assert empty["totals"]["requests"] == 0 and empty["latency_histogram"] == []


def test_top_users_of_a_model(store: Engine) -> None:
    users = model_stats.top_users(store, ORG, SINCE, UNTIL, "llama3.2")
    assert [(u["key"], u["requests"]) for u in users] == [
        ("alice", 3),
        ("bob", 3),
        (None, 2),
        ("carol", 2),
    ]
    carol = next(u for u in users if u["key"] == "carol")
    assert carol["cost_usd"] == pytest.approx(6e-6) and carol["total_tokens"] == 60
    gpt = model_stats.top_users(store, ORG, SINCE, UNTIL, "gpt-4o", limit=1)
    assert [(u["key"], u["requests"]) for u in gpt] == [("alice", 2)]


def test_compare_models_over_one_filter(store: Engine) -> None:
    got = model_stats.compare(store, ORG, SINCE, UNTIL, BUCKET, ["gpt-4o", "llama3.2", "gone"])
    assert list(got) == ["gpt-4o", "llama3.2", "gone"]
    assert got["gpt-4o"]["totals"]["requests"] == 3
    assert got["llama3.2"]["totals"]["requests"] == 10
    assert got["gone"]["totals"]["requests"] == 0 and len(got["gone"]["points"]) == 5
    assert [p["requests"] for p in got["gpt-4o"]["points"]] == [1, 0, 0, 1, 1]
    assert 3000 < got["gpt-4o"]["totals"]["p50_latency_ms"] <= 5000
    cloud = model_stats.compare(
        store, ORG, SINCE, UNTIL, BUCKET, ["llama3.2", "gpt-4o"], {"provider": "openai"}
    )
    assert cloud["llama3.2"]["totals"]["requests"] == 2
    assert cloud["gpt-4o"]["totals"]["requests"] == 3
    alice = model_stats.compare(
        store, ORG, SINCE, UNTIL, BUCKET, ["llama3.2", "gpt-4o"], {"user_id": "alice"}
    )
    assert alice["llama3.2"]["totals"]["requests"] == 3
    assert alice["gpt-4o"]["totals"]["requests"] == 2
    assert alice["gpt-4o"]["totals"]["p50_latency_ms"] is None  # no histograms per user
    assert model_stats.compare(store, ORG, SINCE, UNTIL, BUCKET, []) == {}
    many = model_stats.compare(store, ORG, SINCE, UNTIL, BUCKET, ["a", "b", "c", "d", "e", "a"])
    assert list(many) == ["a", "b", "c", "d"]
    with pytest.raises(ValueError):
        model_stats.compare(store, ORG, SINCE, UNTIL, BUCKET, ["a"], {"nope": "x"})


def test_servings_per_provider(store: Engine) -> None:
    providers = model_stats.servings(store, ORG, SINCE, UNTIL, _local)["providers"]
    assert [(p["key"], p["requests"]) for p in providers] == [("ollama", 8), ("openai", 5)]
    assert providers[1]["cost_usd"] == pytest.approx(0.003006)
    assert 4000 < providers[1]["p50_latency_ms"] <= 5000  # 3 of 5 calls at 4.5 s


def test_model_names_most_used_first(store: Engine) -> None:
    assert model_stats.model_names(store, ORG, SINCE, UNTIL) == ["llama3.2", "gpt-4o"]
    assert model_stats.model_names(store, ORG, UNTIL, UNTIL + HOUR_MS) == ["llama3.2"]  # at UNTIL
    assert model_stats.model_names(store, ORG, UNTIL + 1, UNTIL + HOUR_MS) == []
