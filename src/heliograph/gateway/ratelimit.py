"""Rate limits from ``Helicone-RateLimit-Policy``, enforced before the upstream is called.

Sliding window over two fixed windows: the previous window's count is weighted by how much of
it still overlaps the sliding window. Request-unit limits count at admission (add first, then
check, so concurrent workers cannot both take the last slot); cents-unit limits are charged
by the writer once a request's cost is known, and checked here.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from heliograph.gateway.features import RateLimitPolicy
from heliograph.gateway.state import SharedState

# How a refused request's record begins its error (the metrics count refusals by it).
REFUSED_MESSAGE = "Rate limit exceeded: policy "

log = logging.getLogger(__name__)


def counter_key(
    org_id: str, policy: RateLimitPolicy, user_id: str | None, properties: dict[str, str]
) -> str:
    """The counter a request counts against: its org, policy and segment value."""
    if policy.segment is None:
        segment = "*"
    elif policy.segment == "user":
        segment = user_id or ""
    else:
        segment = properties.get(policy.segment, "")
    raw = f"{org_id}|{policy.quota:g}|{policy.window_s}|{policy.unit}|{policy.segment}|{segment}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def window_of(ts_s: float, window_s: int) -> int:
    return int(ts_s // window_s) * window_s


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    policy: RateLimitPolicy
    used: float
    reset_s: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        p = self.policy
        remaining = max(0, math.floor(p.quota - self.used))
        text = f"{p.quota:g};w={p.window_s};u={p.unit}" + (f";s={p.segment}" if p.segment else "")
        return [
            (b"helicone-ratelimit-limit", f"{p.quota:g}".encode()),
            (b"helicone-ratelimit-remaining", str(remaining).encode()),
            (b"helicone-ratelimit-policy", text.encode()),
            (b"helicone-ratelimit-reset", str(self.reset_s).encode()),
        ]


def _used(policy: RateLimitPolicy, now: float, values: dict[int, float]) -> float:
    current = window_of(now, policy.window_s)
    previous = current - policy.window_s
    overlap = 1.0 - (now - current) / policy.window_s
    return values.get(previous, 0.0) * overlap + values.get(current, 0.0)


async def check(state: SharedState, policy: RateLimitPolicy, key: str) -> Decision:
    """Admit or refuse one request; an unavailable backend admits (traffic never stops)."""
    now = time.time()
    w = policy.window_s
    current = window_of(now, w)
    reset = int(current + w - now) + 1
    try:
        if policy.unit == "request":
            total = await state.counter_add(key, current, 1.0, ttl_s=2 * w + 60)
            values = await state.counter_get(key, [current - w])
            values[current] = total
            used = _used(policy, now, values)
            if used > policy.quota:
                await state.counter_add(key, current, -1.0, ttl_s=2 * w + 60)
                return Decision(False, policy, used - 1, reset)
            return Decision(True, policy, used, reset)
        values = await state.counter_get(key, [current - w, current])
        used = _used(policy, now, values)
        return Decision(used < policy.quota, policy, used, reset)
    except Exception as exc:
        log.warning("rate-limit state unavailable, admitting request: %s", exc)
        return Decision(True, policy, 0.0, reset)
