"""Budgets below the gateway: definitions, windows, the store ledger and the per-worker leases."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine

from heliograph.budgets.guard import BudgetGuard, refusal_message
from heliograph.budgets.ledger import StoreLedger
from heliograph.budgets.rules import Budget, BudgetError, RequestFacts, check_budget
from heliograph.budgets.windows import bucket_of, span
from heliograph.store import budgets as budget_store
from heliograph.store.budgets import Settlement
from heliograph.store.orgs import create_org


def _budget(engine: Engine, org: str, **doc: Any) -> Budget:
    fields = check_budget({"name": "b", "window": "day", **doc})
    return Budget.from_row(budget_store.create_budget(engine, org, fields, None))


FACTS = RequestFacts(key_id="k1", user_id="alice", properties={"team": "a"}, model="gpt-4o",
                     upstream="openai")  # fmt: skip


def test_scope_matches_every_given_part() -> None:
    def scope(**s: Any) -> Budget:
        row = {"id": "x", "org_id": "o", "source": "api", **check_budget(
            {"name": "n", "window": "1h", "limit_requests": 1, "scope": s})}  # fmt: skip
        return Budget.from_row(row)

    assert scope().scope.matches(FACTS)
    assert scope(user_id="alice", model="GPT-4*").scope.matches(FACTS)
    assert not scope(user_id="alice", model="claude*").scope.matches(FACTS)
    assert scope(property={"team": "a"}, key_id="k1").scope.matches(FACTS)
    assert not scope(property={"team": "b"}).scope.matches(FACTS)
    assert not scope(upstream="ollama*").scope.matches(FACTS)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ([], "a budget is a JSON object"),
        ({"window": "day", "limit_usd": 1}, "name:"),
        ({"name": "n", "window": "0h", "limit_usd": 1}, "window:"),
        ({"name": "n", "window": "745h", "limit_usd": 1}, "window:"),
        ({"name": "n", "window": "day", "limit_usd": 1, "limit_tokens": 2}, "exactly one"),
        ({"name": "n", "window": "day", "limit_usd": True}, "limit_usd: a number"),
        ({"name": "n", "window": "day", "limit_usd": 1, "thresholds": [0]}, "thresholds:"),
        ({"name": "n", "window": "day", "limit_usd": 1, "scope": {"property": {}}},
         "scope.property"),
        ({"name": "n", "window": "day", "limit_usd": 1, "extra": 1}, "unknown field(s): extra"),
    ],
)  # fmt: skip
def test_bad_definitions_name_the_field(doc: Any, message: str) -> None:
    with pytest.raises(BudgetError, match=None) as exc:
        check_budget(doc)
    assert message in str(exc.value)


def _b(window: str, tz: str = "UTC") -> Budget:
    row = {
        "id": "x",
        "org_id": "o",
        "source": "api",
        **check_budget({"name": "n", "window": window, "limit_requests": 1, "timezone": tz}),
    }
    return Budget.from_row(row)  # fmt: skip


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_calendar_windows_follow_the_time_zone_and_dst() -> None:
    # 2026-03-29 is the day Berlin moves its clocks forward: a 23-hour day.
    day = span(_b("day", "Europe/Berlin"), _ts("2026-03-29T12:00:00+02:00"))
    assert day.first == _ts("2026-03-29T00:00:00+01:00")
    assert day.resets_at - day.first == 23 * 3600
    week = span(_b("week"), _ts("2026-12-03T10:00:00+00:00"))  # a Thursday
    assert week.first == _ts("2026-11-30T00:00:00+00:00")  # Monday
    month = span(_b("month"), _ts("2026-12-31T23:59:00+00:00"))
    assert (month.first, month.resets_at) == (_ts("2026-12-01T00:00+00:00"),
                                              _ts("2027-01-01T00:00+00:00"))  # fmt: skip


def test_rolling_windows_are_sixty_buckets() -> None:
    budget = _b("24h")
    now = _ts("2026-12-04T12:00:00+00:00")
    window = span(budget, now)
    assert window.wk == 0 and window.last == bucket_of(budget, now)
    assert window.last - window.first == 59 * 24 * 60
    assert window.resets_at == window.last + 24 * 60


def test_reserve_never_exceeds_the_limit_under_threads(engine: Engine) -> None:
    org = create_org(engine, "o")
    budget = _budget(engine, org, limit_requests=10)
    window = (0, 0, 0)
    granted: list[int] = []

    def worker(i: int) -> None:
        for _ in range(3):
            got = budget_store.reserve(engine, budget.id, 10, window, f"h{i}", 1, 1, 60_000)
            assert got is not None
            granted.append(got[0])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 10
    assert budget_store.usage(engine, budget.id, window) == (0, 10)


def test_settle_expiry_and_rolling_spend(engine: Engine) -> None:
    org = create_org(engine, "o")
    budget = _budget(engine, org, limit_tokens=1000)
    window = (0, 100, 200)
    assert budget_store.reserve(engine, budget.id, 1000, window, "h", 300, 500, 60_000) == (
        500,
        500,
    )
    # The record used 120 tokens of its 300 reserved; the lease keeps its other 200.
    budget_store.settle(engine, [Settlement(budget.id, "h", 0, 300, 150, 120)])
    assert budget_store.usage(engine, budget.id, window) == (120, 200)
    # Spend in a bucket that left the window no longer counts.
    budget_store.settle(engine, [Settlement(budget.id, None, 0, 0, 50, 999)])
    assert budget_store.usage(engine, budget.id, window) == (120, 200)
    # A settlement whose reservation already expired lowers nothing.
    budget_store.settle(engine, [Settlement(budget.id, "gone", 0, 50, 150, 10)])
    assert budget_store.usage(engine, budget.id, window) == (130, 200)
    # An expired hold stops counting, and the next reservation sweeps it.
    assert budget_store.reserve(engine, budget.id, 1000, window, "short", 1, 1, 1) == (1, 331)
    time.sleep(0.01)
    # 130 spent + 200 held + 670 = 1000: the last 670 fit, nothing more.
    assert budget_store.reserve(engine, budget.id, 1000, window, "h2", 670, 900, 60_000) == (
        670,
        1000,
    )
    assert budget_store.reserve(engine, budget.id, 1000, window, "h3", 1, 1, 60_000) == (0, 1000)
    assert budget_store.reserve(engine, "no-such-budget", 1, window, "h", 1, 1, 1) is None


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_two_workers_leases_hold_the_limit_and_give_back(engine: Engine) -> None:
    org = create_org(engine, "o")
    budget = _budget(engine, org, limit_requests=100)
    clock = Clock()
    ledger = StoreLedger(engine)
    guards = [BudgetGuard(ledger, 600, "block", now=clock) for _ in range(2)]
    amounts = {"requests": 1, "tokens": 0, "usd": 0}

    async def run() -> int:
        admitted = 0
        for i in range(150):
            verdict = await guards[i % 2].check((budget,), FACTS, amounts, time.time())
            if verdict.refused is None:
                admitted += 1
                assert verdict.entries[0][3] == 1
            else:
                assert "Budget 'b' is used up" in verdict.message
        return admitted

    assert asyncio.run(run()) == 100
    spent, held = budget_store.usage(engine, budget.id, (span(budget, time.time()).wk, 0, 2**40))
    assert (spent, held) == (0, 100)
    # Far from the limit, leases are bigger than one request: fewer ledger calls than requests.
    fresh = _budget(engine, org, name="big", limit_requests=10_000)
    calls = 0
    real = ledger.reserve

    async def counting(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        return await real(*args)

    ledger.reserve = counting  # type: ignore[method-assign]

    async def many() -> None:
        for _ in range(200):
            await guards[0].check((fresh,), FACTS, amounts, time.time())

    asyncio.run(many())
    assert calls < 40
    window = span(fresh, time.time())
    wide = (window.wk, window.first, window.last)
    held_before = budget_store.usage(engine, fresh.id, wide)[1]
    assert held_before > 200  # the lease holds more than it gave out
    clock.t += 5
    asyncio.run(guards[0].release_idle())
    assert budget_store.usage(engine, fresh.id, wide)[1] == 200  # unused part returned


def test_far_from_the_limit_a_slab_admits_requests_and_gives_back_what_it_did_not_use(
    engine: Engine,
) -> None:
    """Far from every limit, requests of one kind are admitted from a slab: one verdict for
    many requests, each holding the slab's size (the opener's estimate, an upper bound of any
    request it admits); larger requests are checked on their own; the unused rest returns."""
    from heliograph.budgets.guard import SLAB_REQUESTS

    org = create_org(engine, "o")
    tokens = _budget(engine, org, name="tokens", limit_tokens=10**9)
    requests = _budget(engine, org, name="requests", limit_requests=10**6)
    both = (tokens, requests)
    clock = Clock()
    guard = BudgetGuard(StoreLedger(engine), 600, "block", now=clock)

    def amounts(n: int) -> dict[str, int | None]:
        return {"requests": 1, "tokens": n, "usd": 0}

    async def run() -> list[Any]:
        first = [await guard.check(both, FACTS, amounts(100), time.time()) for _ in range(3)]
        smaller = await guard.check(both, FACTS, amounts(40), time.time())
        larger = await guard.check(both, FACTS, amounts(500), time.time())
        return [*first, smaller, larger]

    one, two, three, smaller, larger = asyncio.run(run())
    assert one is not two  # the first is checked on its own, then opens a slab
    assert two is three is smaller  # admitted from that slab: one verdict, counted down
    assert [e[3] for e in one.entries] == [100, 1]
    assert [e[3] for e in smaller.entries] == [100, 1]  # each holds the slab's size
    assert larger is not smaller and [e[3] for e in larger.entries] == [500, 1]
    assert all(v.refused is None for v in (one, two, three, smaller, larger))
    window = span(tokens, time.time())
    wide = (window.wk, window.first, window.last)
    assert budget_store.usage(engine, tokens.id, wide)[1] >= 100 * SLAB_REQUESTS
    # Settle the five admitted requests' holds as the writer would, then go idle: the slab's
    # unused room and the lease's rest return, so nothing stays held.
    held = [(v.entries[0][1], v.entries[0][3]) for v in (one, two, three, smaller, larger)]
    settled = [Settlement(tokens.id, h, window.wk, n, window.last, 0) for h, n in held]
    budget_store.settle(engine, settled)
    clock.t += 5
    asyncio.run(guard.release_idle())
    assert budget_store.usage(engine, tokens.id, wide)[1] == 0


def test_no_slab_near_a_limit(engine: Engine) -> None:
    """A slab would hold more than a 1/16 share of this budget's room: requests go one by one,
    each verdict its own, and exactly the limit's worth gets through."""
    org = create_org(engine, "o")
    budget = _budget(engine, org, limit_tokens=100 * 16 * 16 - 1)
    guard = BudgetGuard(StoreLedger(engine), 600, "block")
    amounts = {"requests": 1, "tokens": 100, "usd": 0}

    async def run() -> list[Any]:
        return [await guard.check((budget,), FACTS, amounts, time.time()) for _ in range(300)]

    verdicts = asyncio.run(run())
    admitted = [v for v in verdicts if v.refused is None]
    assert len({id(v) for v in admitted}) == len(admitted)
    assert len(admitted) == (100 * 16 * 16 - 1) // 100


def test_refusal_message_says_which_limit_and_when() -> None:
    budget = _b("day")
    now = _ts("2026-12-04T22:30:00+00:00")
    text = refusal_message(budget, span(budget, now), now)
    assert text.startswith("Budget 'n' is used up: its limit is 1 requests per calendar day (UTC).")
    assert "It resets at 2026-12-05 00:00 UTC (in 1 h 30 min)." in text


def test_budget_percent_alert_metric_reads_the_fullest_budget(
    engine: Engine, tmp_path: Any
) -> None:
    from heliograph.alerts.definitions import check_rule
    from heliograph.alerts.metrics import MetricInput, measure

    org = create_org(engine, "o")
    now = time.time()
    small = _budget(engine, org, name="small", limit_requests=4)
    _budget(engine, org, name="big", limit_requests=100)
    window = span(small, now)
    given = MetricInput(engine, tmp_path, org, {}, int(now * 1000) - 60_000, int(now * 1000))
    assert measure("budget_percent", given).value == 0.0
    budget_store.settle(engine, [Settlement(small.id, None, window.wk, 0, window.first, 3)])
    assert measure("budget_percent", given).value == 75.0
    doc = {"name": "r", "metric": "budget_percent", "window": "5m", "comparison": ">=",
           "threshold": 80}  # fmt: skip
    assert check_rule(doc, {})["metric"] == "budget_percent"


def test_one_worker_serves_two_organizations_budgets(engine: Engine) -> None:
    """The guard keeps each organization's matches apart: alternating requests of two
    organizations each count against their own budget only."""
    first, second = create_org(engine, "a"), create_org(engine, "b")
    one = _budget(engine, first, name="a", limit_requests=3)
    two = _budget(engine, second, name="b", limit_requests=5)
    guard = BudgetGuard(StoreLedger(engine), 600, "block")
    amounts = {"requests": 1, "tokens": 0, "usd": 0}

    async def run() -> tuple[int, int]:
        admitted = [0, 0]
        for i in range(20):
            budget = (one, two)[i % 2]
            verdict = await guard.check((budget,), FACTS, amounts, time.time())
            admitted[i % 2] += verdict.refused is None
        return admitted[0], admitted[1]

    assert asyncio.run(run()) == (3, 5)


def test_prune_drops_spend_no_window_reaches_and_expired_holds(engine: Engine) -> None:
    from heliograph.budgets.jobs import KEEP_S

    org = create_org(engine, "o")
    budget = _budget(engine, org, limit_requests=10)
    now = int(time.time())
    old, recent = now - KEEP_S - 60, now - 60
    budget_store.settle(engine, [Settlement(budget.id, None, 0, 0, old, 2)])
    budget_store.settle(engine, [Settlement(budget.id, None, 0, 0, recent, 3)])
    assert budget_store.reserve(engine, budget.id, 10, (0, 0, 0), "gone", 1, 1, 1) is not None
    time.sleep(0.01)
    assert budget_store.prune_spend(engine, now - KEEP_S) == 1
    assert budget_store.usage(engine, budget.id, (0, 0, now)) == (3, 0)


def test_a_batch_settles_one_sum_per_reservation_and_skips_records_stored_before() -> None:
    """Records admitted by one slab share a reservation: the writer settles their sum once;
    a record that was not newly stored (a spool replay) adds nothing."""
    from heliograph.budgets.settle import totals

    slab = ("b1", "w:1:b1", 7, 1000)
    records = [
        ("r1", ((*slab, 50, 20), ("b2", None, 3, 1000, 0, 1))),
        ("r2", ((*slab, 50, 35), ("b2", None, 3, 1000, 0, 1))),
        ("r3", ((*slab, 50, 10),)),  # stored by an earlier pass
        ("r4", (("b1", "w:1:b1", 7, 1060, 50, 5),)),  # the next minute's bucket
    ]
    got = totals(records, {"r1", "r2", "r4"})
    assert sorted(got, key=lambda s: (s.budget_id, s.bucket)) == [
        Settlement("b1", "w:1:b1", 7, 100, 1000, 55),
        Settlement("b1", "w:1:b1", 7, 50, 1060, 5),
        Settlement("b2", None, 3, 0, 1000, 2),
    ]
