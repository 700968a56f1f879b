"""Where budget usage lives: the store (every worker of one server) or Redis (replicas).

Both backends keep the same two quantities, settled spend per bucket and unexpired holds per
window key, and make a reservation one atomic step: read both, compare with the limit, add
the hold. The gateway calls ``reserve`` and ``release`` (async, bounded by a timeout); the
writer calls ``settle`` (blocking, in its own process) once a record's real usage is known.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from heliograph.budgets.windows import Span
from heliograph.store import budgets as budget_store
from heliograph.store.budgets import Settlement

TIMEOUT_S = 2.0
SPEND_TTL_S = 32 * 86400  # longer than any window: a month, or 744 rolling hours

# KEYS: spend hash, holds hash, expiries hash.
# ARGV: first, last, now_ms, limit, need, want, hold_id, ttl_ms.
_RESERVE = """
local now = tonumber(ARGV[3])
local exp = redis.call('HGETALL', KEYS[3])
for i = 1, #exp, 2 do
  if tonumber(exp[i + 1]) <= now then
    redis.call('HDEL', KEYS[2], exp[i])
    redis.call('HDEL', KEYS[3], exp[i])
  end
end
local first, last = tonumber(ARGV[1]), tonumber(ARGV[2])
local used = 0
local spend = redis.call('HGETALL', KEYS[1])
for i = 1, #spend, 2 do
  local bucket = tonumber(spend[i])
  if bucket >= first and bucket <= last then
    used = used + tonumber(spend[i + 1])
  elseif bucket < first then
    redis.call('HDEL', KEYS[1], spend[i])
  end
end
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do used = used + tonumber(v) end
local need = tonumber(ARGV[5])
local room = tonumber(ARGV[4]) - used
if room < need then return {0, used} end
local grant = math.min(math.max(tonumber(ARGV[6]), need), room)
redis.call('HINCRBY', KEYS[2], ARGV[7], grant)
redis.call('HSET', KEYS[3], ARGV[7], now + tonumber(ARGV[8]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[8]) * 2)
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[8]) * 2)
return {grant, used + grant}
"""

# KEYS: holds hash, expiries hash. ARGV: hold_id, amount. Lowers a hold that still exists.
_LOWER = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
  if left <= 0 then
    redis.call('HDEL', KEYS[1], ARGV[1])
    redis.call('HDEL', KEYS[2], ARGV[1])
  end
end
return 0
"""


# KEYS: a once-marker, then (holds, expiries, spend) per settlement. ARGV: the marker's TTL in
# seconds, the spend TTL, then (hold id or "", estimate, bucket, actual) per settlement.
# Applied at most once per marker: a batch re-sent after a lost reply is not counted twice.
_SETTLE = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[1])) then return 0 end
local spend_ttl = tonumber(ARGV[2])
for i = 0, (#KEYS - 1) / 3 - 1 do
  local holds, exp, spend = KEYS[2 + 3 * i], KEYS[3 + 3 * i], KEYS[4 + 3 * i]
  local hold, est = ARGV[3 + 4 * i], tonumber(ARGV[4 + 4 * i])
  local bucket, actual = ARGV[5 + 4 * i], tonumber(ARGV[6 + 4 * i])
  if hold ~= '' and est > 0 and redis.call('HEXISTS', holds, hold) == 1 then
    if redis.call('HINCRBY', holds, hold, -est) <= 0 then
      redis.call('HDEL', holds, hold)
      redis.call('HDEL', exp, hold)
    end
  end
  if actual > 0 then
    redis.call('HINCRBY', spend, bucket, actual)
    redis.call('EXPIRE', spend, spend_ttl)
  end
end
return 1
"""
SETTLED_MARKER_TTL_S = 86400


def _spent_in(buckets: dict[Any, Any], span: Span) -> int:
    """The spend a Redis hash of buckets holds within the window."""
    return sum(int(v) for k, v in buckets.items() if span.first <= int(k) <= span.last)


def _keys(budget_id: str, wk: int) -> tuple[str, str, str]:
    base = f"hg:b:{{{budget_id}}}"
    return f"{base}:spend", f"{base}:holds:{wk}", f"{base}:exp:{wk}"


class Ledger(ABC):
    @abstractmethod
    async def reserve(
        self, budget_id: str, limit: int, span: Span, hold_id: str, need: int, want: int,
        ttl_ms: int,
    ) -> tuple[int, int] | None:  # fmt: skip
        """(granted, used after); granted 0 when ``need`` does not fit; None: no budget."""

    @abstractmethod
    async def release(self, budget_id: str, wk: int, hold_id: str, amount: int) -> None: ...

    @abstractmethod
    async def usage(self, budget_id: str, span: Span) -> tuple[int, int]:
        """(settled spend, held) in the window."""

    @abstractmethod
    def settle(self, items: Sequence[Settlement], once: str = "") -> bool: ...

    async def close(self) -> None:
        return None


class StoreLedger(Ledger):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.wait_for(asyncio.to_thread(fn, self.engine, *args), TIMEOUT_S)

    async def reserve(
        self, budget_id: str, limit: int, span: Span, hold_id: str, need: int, want: int,
        ttl_ms: int,
    ) -> tuple[int, int] | None:  # fmt: skip
        where = (span.wk, span.first, span.last)
        result: tuple[int, int] | None = await self._call(
            budget_store.reserve, budget_id, limit, where, hold_id, need, want, ttl_ms
        )
        return result

    async def release(self, budget_id: str, wk: int, hold_id: str, amount: int) -> None:
        await self._call(budget_store.release, hold_id, amount)

    async def usage(self, budget_id: str, span: Span) -> tuple[int, int]:
        where = (span.wk, span.first, span.last)
        result: tuple[int, int] = await self._call(budget_store.usage, budget_id, where)
        return result

    def settle(self, items: Sequence[Settlement], once: str = "") -> bool:
        budget_store.settle(self.engine, items)  # one transaction: no once-marker needed
        return True


class RedisLedger(Ledger):
    def __init__(self, url: str) -> None:
        import redis
        import redis.asyncio as aioredis

        self.url = url
        self.redis = aioredis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=1)
        self._sync: redis.Redis | None = None
        self._settle: Any = None
        self._reserve = self.redis.register_script(_RESERVE)
        self._lower = self.redis.register_script(_LOWER)

    async def reserve(
        self, budget_id: str, limit: int, span: Span, hold_id: str, need: int, want: int,
        ttl_ms: int,
    ) -> tuple[int, int] | None:  # fmt: skip
        now = int(time.time() * 1000)
        args: list[int | str] = [span.first, span.last, now, limit, need, want, hold_id, ttl_ms]
        granted, used = await self._reserve(keys=list(_keys(budget_id, span.wk)), args=args)
        return int(granted), int(used)

    async def release(self, budget_id: str, wk: int, hold_id: str, amount: int) -> None:
        _, holds, exp = _keys(budget_id, wk)
        await self._lower(keys=[holds, exp], args=[hold_id, amount])

    async def usage(self, budget_id: str, span: Span) -> tuple[int, int]:
        spend_key, holds, exp = _keys(budget_id, span.wk)
        now = int(time.time() * 1000)
        spend = await self.redis.hgetall(spend_key)
        held_raw = await self.redis.hgetall(holds)
        expiries = await self.redis.hgetall(exp)
        held = sum(int(v) for k, v in held_raw.items() if int(expiries.get(k, 0)) > now)
        return _spent_in(spend, span), held

    def settle(self, items: Sequence[Settlement], once: str = "") -> bool:
        """Apply settlements atomically, at most once per ``once`` (a fresh id per batch when
        empty); False when ``once`` was applied already."""
        if self._sync is None:
            import redis

            self._sync = redis.Redis.from_url(self.url, socket_timeout=TIMEOUT_S)
            self._settle = self._sync.register_script(_SETTLE)
        keys = [f"hg:settled:{once or uuid.uuid4().hex}"]
        args: list[int | str] = [SETTLED_MARKER_TTL_S, SPEND_TTL_S]
        for item in items:
            spend_key, holds, exp = _keys(item.budget_id, item.wk)
            keys += (holds, exp, spend_key)
            args += (item.hold_id or "", item.estimate, item.bucket, item.actual)
        return bool(self._settle(keys=keys, args=args))

    async def close(self) -> None:
        await self.redis.aclose()
        if self._sync is not None:
            self._sync.close()


def make_ledger(engine: Engine, redis_url: str | None) -> Ledger:
    return RedisLedger(redis_url) if redis_url else StoreLedger(engine)


def read_percentages(
    engine: Engine, redis_url: str | None, org_id: str, now: float
) -> dict[str, float]:
    """Each of the organization's budgets: the percent of its limit settled in its current
    window (blocking, for the job process's alert rules)."""
    from heliograph.budgets.rules import Budget
    from heliograph.budgets.windows import span

    client = None
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url, socket_timeout=TIMEOUT_S)
    out: dict[str, float] = {}
    try:
        for row in budget_store.list_budgets(engine, org_id):
            budget = Budget.from_row(row)
            window = span(budget, now)
            if client is None:
                spent, _ = budget_store.usage(
                    engine, budget.id, (window.wk, window.first, window.last)
                )
            else:
                spent = _spent_in(client.hgetall(_keys(budget.id, window.wk)[0]), window)
            if budget.limit:
                out[budget.name] = 100.0 * spent / budget.limit
            else:
                out[budget.name] = 100.0 if spent else 0.0
    finally:
        if client is not None:
            client.close()
    return out
