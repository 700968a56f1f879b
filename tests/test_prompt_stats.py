"""A prompt's production figures per version (store.prompt_stats) on both dialects, from
records with known values: requests, cost per request, latency percentiles, errors, tokens,
feedback and scores; other prompts, other organizations and records outside the window are
not counted; and the index of migration 0013 is what both databases use to find them."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from sqlalchemy import Engine, text

from heliograph.store import prompt_stats
from heliograph.store.feedback import set_feedback, set_scores
from query_support import insert, row

ORG, OTHER = "org-prompts", "org-else"
NOW = int(time.time() * 1000)
SINCE, UNTIL = NOW - 3_600_000, NOW + 1


def records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(org: str = ORG, at: int = NOW - 60_000, **kw: Any) -> str:
        rec = row(org, len(out), created_at=at, **kw)
        out.append(rec)
        return str(rec["id"])

    # v1: 4 calls at 200, 400, 600, 800 ms; 100 in / 50 out; priced 2_000 nano-USD; one error
    for i, latency in enumerate((200.0, 400.0, 600.0, 800.0)):
        add(
            prompt_name="summary",
            prompt_version=1,
            prompt_label="production",
            latency_ms=latency,
            prompt_tokens=100,
            completion_tokens=50,
            cost_known=True,
            cost_nusd=2_000,
            state="error" if i == 3 else "ok",
            status=500 if i == 3 else 200,
        )
    # v2: 2 calls at 100 ms, 60 in / 20 out, 1_000 nano-USD each (half the cost of v1)
    for _ in range(2):
        add(
            prompt_name="summary",
            prompt_version=2,
            latency_ms=100.0,
            prompt_tokens=60,
            completion_tokens=20,
            cost_known=True,
            cost_nusd=1_000,
        )
    # v2 unpriced (cost per request counts priced requests only)
    add(prompt_name="summary", prompt_version=2, latency_ms=100.0, prompt_tokens=60)
    # not counted: another prompt, another org, before the window, no prompt at all
    add(prompt_name="other", prompt_version=1, cost_known=True, cost_nusd=9_000)
    add(OTHER, prompt_name="summary", prompt_version=1)
    add(at=SINCE - 1, prompt_name="summary", prompt_version=1)
    add()
    return out


@pytest.fixture
def stored(engine: Engine) -> list[dict[str, Any]]:
    rows = records()
    insert(engine, rows)
    ids = [r["id"] for r in rows]
    # feedback: v1 two up one down; v2 one up
    for rid, up in ((ids[0], True), (ids[1], True), (ids[2], False), (ids[4], True)):
        assert set_feedback(engine, ORG, rid, up)
    assert set_scores(engine, ORG, ids[0], {"accuracy": 0.5, "tone": 1})
    assert set_scores(engine, ORG, ids[1], {"accuracy": 1.0})
    assert set_scores(engine, ORG, ids[4], {"accuracy": 0.9})
    assert set_feedback(engine, ORG, ids[7], False)  # the other prompt
    return rows


def test_figures_per_version(engine: Engine, stored: list[dict[str, Any]]) -> None:
    found = prompt_stats.version_metrics(engine, ORG, "summary", SINCE, UNTIL)
    assert set(found) == {1, 2}
    v1, v2 = found[1], found[2]
    assert v1["requests"] == 4 and v1["errors"] == 1 and v1["error_rate"] == 0.25
    assert v1["cost_usd"] == pytest.approx(8e-6)
    assert v1["cost_per_request_usd"] == pytest.approx(2e-6)
    assert v1["prompt_tokens_per_request"] == 100 and v1["completion_tokens_per_request"] == 50
    # histogram percentiles: 200|400|600|800 ms fall in (100,200], (300,500], (500,750],
    # (750,1000]: the median is the end of the second bucket's rank
    assert v1["p50_latency_ms"] == 500.0
    assert v1["p95_latency_ms"] == pytest.approx(950.0)
    assert v1["feedback"] == {"count": 3, "positive": 2, "average": pytest.approx(2 / 3)}
    assert v1["scores"] == {
        "accuracy": {"count": 2, "average": pytest.approx(0.75)},
        "tone": {"count": 1, "average": pytest.approx(1.0)},
    }
    assert v2["requests"] == 3 and v2["errors"] == 0 and v2["unpriced_requests"] == 1
    assert v2["cost_per_request_usd"] == pytest.approx(1e-6)
    assert v2["prompt_tokens_per_request"] == 60
    assert v2["completion_tokens_per_request"] == pytest.approx(40 / 3)
    assert v2["p50_latency_ms"] == 75.0  # three in (50, 100]: rank 1.5 of 3, linear inside
    assert v2["feedback"] == {"count": 1, "positive": 1, "average": 1.0}
    assert v2["scores"] == {"accuracy": {"count": 1, "average": pytest.approx(0.9)}}
    # nothing for a prompt without records, nor for another org's
    assert prompt_stats.version_metrics(engine, ORG, "absent", SINCE, UNTIL) == {}
    theirs = prompt_stats.version_metrics(engine, OTHER, "summary", SINCE, UNTIL)
    assert list(theirs) == [1] and theirs[1]["requests"] == 1


def test_traffic_by_prompt(engine: Engine, stored: list[dict[str, Any]]) -> None:
    found = prompt_stats.traffic_by_prompt(
        engine, ORG, ["summary", "other", "absent"], SINCE, UNTIL
    )
    assert found == {
        "summary": {"requests": 7, "cost_usd": pytest.approx(1e-5), "unpriced_requests": 1},
        "other": {"requests": 1, "cost_usd": pytest.approx(9e-6), "unpriced_requests": 0},
    }
    assert prompt_stats.traffic_by_prompt(engine, ORG, [], SINCE, UNTIL) == {}


PLANNED = (
    "SELECT prompt_version, latency_ms FROM requests WHERE org_id = :o AND prompt_name = :n"
    " AND created_at >= :s AND created_at < :u AND kind = 'llm'",
    "SELECT prompt_name, count(*) FROM requests WHERE org_id = :o AND prompt_name IN (:n, :m)"
    " AND created_at >= :s AND created_at < :u AND kind = 'llm' GROUP BY prompt_name",
)


@pytest.mark.parametrize("sql", PLANNED, ids=["one-prompt", "prompt-list"])
def test_the_prompt_index_serves_the_queries(
    engine: Engine, stored: list[dict[str, Any]], sql: str
) -> None:
    """Both databases read ix_requests_org_prompt for a prompt's records in a window, not the
    (org_id, created_at) index (which would read every record of the window)."""
    more = [row(ORG, 1000 + i, created_at=NOW - i * 1000) for i in range(2000)]  # no prompt
    insert(engine, more)
    params = {"o": ORG, "n": "summary", "m": "other", "s": SINCE, "u": UNTIL}
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE requests"))
            plan = " ".join(str(r) for r in conn.execute(text(f"EXPLAIN {sql}"), params))
            # A monthly partition scans its own copy of the index: name the parent index.
            used = re.findall(r"Index (?:Only )?Scan using (\S+) on", plan)
            parents = conn.execute(
                text(
                    "SELECT i.inhparent::regclass::text FROM pg_inherits i"
                    " WHERE i.inhrelid = ANY(CAST(:used AS regclass[]))"
                ),
                {"used": used},
            ).scalars()
            plan += " " + " ".join(parents)
        else:  # with no statistics (a fresh store) and with them
            explain = text(f"EXPLAIN QUERY PLAN {sql}")
            plan = " ".join(str(r) for r in conn.execute(explain, params))
            assert "ix_requests_org_prompt" in plan, plan
            conn.execute(text("ANALYZE"))
            plan = " ".join(str(r) for r in conn.execute(explain, params))
    assert "ix_requests_org_prompt" in plan, plan
