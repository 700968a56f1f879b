"""The estimate a budget reserves: the quick bound far from the limit, the exact count near it.

The quick bound (the body's size in bytes for its prompt) must never be below the exact
count, or a budget could be overspent; near a limit the guard must switch to the exact count,
so a request that fits is not refused for an overestimate.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine

from heliograph.budgets.estimate import Rates, estimate, prompt_tokens
from heliograph.budgets.guard import BudgetGuard
from heliograph.budgets.ledger import StoreLedger
from heliograph.budgets.rules import Budget, RequestFacts, check_budget
from heliograph.capture.builder import make_pricebook
from heliograph.config import Settings
from heliograph.store import budgets as budget_store
from heliograph.store.orgs import create_org

CHAT = "/chat/completions"
FACTS = RequestFacts(key_id=None, user_id=None, properties={}, model="gpt-4o", upstream="openai")


def _body(**doc: Any) -> tuple[bytes, dict[str, Any]]:
    return orjson.dumps(doc), doc


TEXT_BODIES = [
    _body(model="gpt-4o", messages=[{"role": "user", "content": "Say hi"}]),
    _body(
        model="gpt-4o", messages=[{"role": "user", "content": "日本語のテキスト、絵文字 🎉🎉" * 40}]
    ),
    _body(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "word " * 6000},  # over the whole-body limit: walked
        ],
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    ),
    _body(model="llama3", messages=[{"role": "user", "content": "a\\nb\\u0000 \t" * 300}]),
]


@pytest.mark.parametrize(("body", "doc"), TEXT_BODIES)
def test_the_quick_bound_is_never_below_the_exact_count(body: bytes, doc: dict[str, Any]) -> None:
    rates = Rates(make_pricebook(Settings()))
    args = (body, doc, CHAT, doc["model"], "openai", "openai", rates, 100)
    quick, exact = estimate(*args, quick=True), estimate(*args)
    assert quick.tokens == len(body) + 3 + 100
    assert quick.tokens >= exact.tokens > 100
    assert exact.tokens == prompt_tokens(body, doc, CHAT, doc["model"]) + 100
    if doc["model"] == "gpt-4o":
        assert quick.cost_nusd is not None and exact.cost_nusd is not None
        assert quick.cost_nusd >= exact.cost_nusd > 0


def test_images_are_always_counted_exactly() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    body, doc = _body(model="gpt-4o", messages=[{"role": "user", "content": [image]}])
    rates = Rates(make_pricebook(Settings()))
    args = (body, doc, CHAT, "gpt-4o", "openai", "openai", rates, 10)
    quick = estimate(*args, quick=True)
    assert quick == estimate(*args)
    assert quick.tokens > len(body)  # an image costs far more tokens than its URL's bytes


def _tokens_budget(engine: Engine, org: str, limit: int) -> Budget:
    fields = check_budget({"name": f"t{limit}", "window": "day", "limit_tokens": limit})
    return Budget.from_row(budget_store.create_budget(engine, org, fields, None))


def test_guard_uses_the_quick_bound_far_from_the_limit_and_exact_near_it(engine: Engine) -> None:
    org = create_org(engine, "o")
    far, near = _tokens_budget(engine, org, 10**9), _tokens_budget(engine, org, 1000)
    guard = BudgetGuard(StoreLedger(engine), 600, "block")
    quick = {"requests": 1, "tokens": 200, "usd": 0}
    exact = {"requests": 1, "tokens": 60, "usd": 0}
    asked: list[int] = []

    def refine() -> dict[str, int | None]:
        asked.append(1)
        return exact

    async def one(budget: Budget) -> Any:
        return await guard.check((budget,), FACTS, quick, time.time(), refine)

    async def run() -> None:
        first = await one(far)  # no lease yet: the room is unknown, so exact
        assert (first.refused, first.entries[0][3], len(asked)) == (None, 60, 1)
        for _ in range(20):  # the lease shows ample room: the quick bound, no counting
            assert (await one(far)).entries[0][3] == 200
        assert len(asked) == 1
        # 1,000 tokens fit 16 exact estimates but only 5 quick ones: near its limit, each
        # request reserves its exact count, so all 16 that fit get through.
        admitted = [await one(near) for _ in range(20)]
        assert all(v.entries[0][3] == 60 for v in admitted if v.refused is None)
        assert sum(v.refused is None for v in admitted) == 1000 // 60
        assert "used up" in admitted[-1].message

    asyncio.run(run())
