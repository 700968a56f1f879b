"""The budget check on the request path: reserve before forwarding, refuse when it cannot.

Every request that a blocking budget covers reserves its estimate in the shared ledger before
the upstream is called, so concurrent requests cannot all see the same remaining amount. To
keep that off the database for almost every request, each worker reserves in **leases**: a
reservation larger than one request (1/16 of what the budget had left, at least the request's
own estimate), from which it then admits requests in memory. Far from the limit a lease covers
many requests; near it, leases shrink to single requests, so the sum of everything reserved by
all workers never exceeds the limit. What a worker has reserved and not used goes back to the
ledger after ``IDLE_RELEASE_S`` without use, and every lease expires ``ttl`` after it was last
topped up, so a killed worker's reservations free themselves.

The writer settles each record: its estimate leaves the lease's hold, its real usage (cost,
tokens, one request) is added to the budget's spend. Alert-only budgets reserve nothing; their
usage is settled the same way so they show spent and remaining.

Far from every limit, a worker also admits requests in **slabs**: for the budgets that cover
one kind of request (same key, user, model, upstream and scoped properties), it takes room for
``SLAB_REQUESTS`` requests of the size of the one in hand from each of their leases at once, and
builds their verdict once. The next requests of that kind that are no larger are admitted by
counting one down, for at most ``SLAB_LIFE_S``; each holds the slab's size, an upper bound of
its own estimate, and what a slab did not use goes back to the leases. A slab is only opened
when it takes at most 1/``LEASE_SHARE`` of each budget's room, so near a limit every request
is still checked one by one with its exact estimate.

A ledger that cannot answer (store or Redis down) admits the request, logged and noted on the
record: traffic never stops because the database did.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from heliograph.budgets.ledger import Ledger
from heliograph.budgets.rules import NUSD_PER_USD, Budget, RequestFacts
from heliograph.budgets.windows import Span, span

log = logging.getLogger(__name__)
LEASE_SHARE = 16  # a lease takes 1/16 of what the budget has left
IDLE_RELEASE_S = 2.0
EXHAUSTED_RECHECK_S = 1.0
MATCH_CACHE = 4096  # request kinds remembered per organization (their matches and slabs)
SLAB_REQUESTS = 64  # requests admitted together far from every limit
SLAB_LIFE_S = 1.0  # a slab's verdict (its reset header) is at most this old


@dataclass(slots=True)
class Lease:
    hold_id: str
    wk: int
    left: int = 0  # reserved in the ledger, not yet given to a request
    room: int = 0  # what the budget had left after the last grant (all workers)
    expires: float = 0.0  # monotonic: the hold expires in the ledger around then
    used_at: float = 0.0
    exhausted_at: float = -1e9


@dataclass
class Verdict:
    """What the check decided: refused (with the message), or admitted with what to settle."""

    refused: Budget | None = None
    message: str = ""
    entries: list[list[Any]] = field(default_factory=list)  # the end frame's "bud"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    note: str | None = None  # on the record: unpriced or unchecked budgets


@dataclass(slots=True)
class Slab:
    """Room taken at once for ``left`` more requests of one kind, each at most ``bounds``."""

    verdict: Verdict
    taken: list[tuple[Budget, Lease, int]]  # each lease, and what one request holds of it
    tokens: int  # the largest amounts a request may have to be admitted from the slab
    usd: int | None  # None: no USD budget covers these requests
    begins: float  # wall clock: the windows the verdict's entries name
    ends: float
    until: float  # monotonic: the slab's life, and its leases' expiry
    left: int = SLAB_REQUESTS


@dataclass(slots=True)
class Match:
    """The budgets that cover one kind of request, and its slab if one is open."""

    budgets: tuple[Budget, ...]
    slab: Slab | None = None


class BudgetGuard:
    """One per gateway worker: its leases, the ledger, and the settings that shape a check."""

    def __init__(
        self, ledger: Ledger, ttl_s: float, unpriced: str, now: Any = time.monotonic
    ) -> None:
        self.ledger = ledger
        self.ttl_ms = int(ttl_s * 1000)
        self.unpriced = unpriced  # "block" or "allow"
        self.worker = uuid.uuid4().hex[:12]
        self.leases: dict[str, Lease] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.clock = now
        self._serial = 0
        self._spans: dict[str, Span] = {}  # budget id -> its window now (until it moves on)
        # Per organization, which budgets cover a request, by who and what it is: for one
        # tuple of its budgets (a reload makes a new tuple, and the answers start again).
        self._match_state: dict[
            str, tuple[tuple[Budget, ...], tuple[str, ...], dict[tuple[Any, ...], Match]]
        ] = {}
        self._slabs: list[Slab] = []  # every open slab, to give back what it did not use
        self._headers: dict[str, tuple[Budget, tuple[bytes, bytes, bytes]]] = {}

    def from_slab(
        self, budgets: tuple[Budget, ...], facts: RequestFacts, tokens: int, usd: int | None,
        started: float,
    ) -> Verdict | None:  # fmt: skip
        """The usual case far from every limit, without a coroutine: the open slab of this
        kind of request admits it (counted down), if it is still good and the request is no
        larger than the slab's; None sends the request through ``check``."""
        slab = self._matching(budgets, facts).slab
        if (
            slab is not None
            and slab.left
            and self.clock() < slab.until
            and slab.begins <= started < slab.ends
            and tokens <= slab.tokens
            and (slab.usd is None or (usd is not None and usd <= slab.usd))
        ):
            slab.left -= 1
            return slab.verdict
        return None

    async def check(
        self,
        budgets: tuple[Budget, ...],
        facts: RequestFacts,
        amounts: Mapping[str, int | None],
        started: float,
        refine: Callable[[], Mapping[str, int | None]] | None = None,
    ) -> Verdict:
        """Reserve for every budget that covers the request; ``amounts`` by unit (usd None:
        no known price); ``started`` the request's wall-clock time. ``refine``, when given,
        makes exact amounts where ``amounts`` are a quick upper bound: asked once, as soon
        as a budget is near its limit (room for fewer than ``LEASE_SHARE`` such requests)."""
        match = self._matching(budgets, facts)
        now = self.clock()
        slab = match.slab
        if slab is not None:
            if slab.left and now < slab.until and slab.begins <= started < slab.ends:
                usd = amounts["usd"]
                if (amounts["tokens"] or 0) <= slab.tokens and (
                    slab.usd is None or (usd is not None and usd <= slab.usd)
                ):  # the usual case far from every limit: one count down
                    slab.left -= 1
                    return slab.verdict
                # a larger request than the slab's: checked on its own, the slab kept
            else:
                match.slab = None
                self._close(slab, now)
        verdict = Verdict()
        quick = amounts
        taken: list[tuple[Budget, Lease, int]] = []
        notes: list[str] = []
        entries = verdict.entries
        tightest: tuple[float, Budget, Lease, Span] | None = None
        spans, leases = self._spans, self.leases
        for budget in match.budgets:
            window = spans.get(budget.id)
            if window is None or not window.last <= started < window.resets_at:
                window = spans[budget.id] = span(budget, started)
            unit = budget.unit
            amount = amounts[unit]
            lease = leases.get(budget.id)
            blocks = budget.action == "block"
            if (
                refine is not None
                and blocks
                and unit != "requests"
                and amount  # None (unpriced) stays None; 0 needs no refining
                and (lease is None or lease.room + lease.left < amount * LEASE_SHARE)
            ):  # near the limit (or not known yet): reserve no more than the exact estimate
                amounts, refine = refine(), None
                amount = amounts[unit]
            if amount is None:  # a USD budget and a model with no known price
                if blocks and self.unpriced == "block":
                    self._give_back(taken)
                    verdict.refused = budget
                    verdict.message = _unpriced_message(budget, facts.model)
                    return verdict
                notes.append(f"unpriced: {budget.name}")
                entries.append([budget.id, None, window.wk, 0, unit, window.last])
                continue
            if not blocks:
                entries.append([budget.id, None, window.wk, 0, unit, window.last])
                continue
            if (  # the usual case: this worker's lease covers it, no await at all
                lease is not None
                and lease.wk == window.wk
                and lease.left >= amount
                and lease.expires > now
            ):
                lease.left -= amount
                lease.used_at = now
            else:
                try:
                    lease = await self._take(budget, window, amount)
                except Exception as exc:  # the ledger is down: admit, and say so
                    log.warning("budget %s unchecked (ledger unavailable): %s", budget.name, exc)
                    notes.append(f"unchecked: {budget.name}")
                    entries.append([budget.id, None, window.wk, 0, unit, window.last])
                    continue
                if lease is None:
                    self._give_back(taken)
                    verdict.refused = budget
                    verdict.message = refusal_message(budget, window, started)
                    return verdict
            taken.append((budget, lease, amount))
            entries.append([budget.id, lease.hold_id, window.wk, amount, unit, window.last])
            share = (lease.room + lease.left) / budget.limit if budget.limit else 0.0
            if tightest is None or share < tightest[0]:
                tightest = (share, budget, lease, window)
        if tightest is not None:
            _, budget, lease, window = tightest
            reset_s = int(window.resets_at - started)
            static = self._headers.get(budget.id)
            if static is None or static[0] is not budget:  # new, or reloaded since
                static = self._headers[budget.id] = (budget, static_headers(budget))
            remaining = max(lease.room + lease.left, 0)
            verdict.headers = budget_headers(budget, remaining, reset_s, static[1])
        verdict.note = "; ".join(notes) or None
        if not notes and taken and quick is amounts and match.slab is None:
            await self._open(match, quick, started)  # far from the limits (no refining)
        return verdict

    async def _open(self, match: Match, amounts: Mapping[str, int | None], started: float) -> None:
        """Take room for a slab of requests like this one from every blocking budget's lease,
        when that leaves each budget ample room; otherwise requests go one by one."""
        taken: list[tuple[Budget, Lease, int]] = []
        entries: list[list[Any]] = []
        tightest: tuple[float, Budget, Lease, Span] | None = None
        begins, ends = 0.0, float("inf")
        now = self.clock()
        until = now + SLAB_LIFE_S
        usd_bound: int | None = None
        for budget in match.budgets:
            window = self._spans.get(budget.id)
            if window is None or not window.last <= started < window.resets_at:
                return
            begins, ends = max(begins, window.last), min(ends, window.resets_at)
            unit = budget.unit
            per = amounts[unit]
            if per is None:
                return
            if unit == "usd":
                usd_bound = per
            if budget.action != "block":
                entries.append([budget.id, None, window.wk, 0, unit, window.last])
                continue
            need = per * SLAB_REQUESTS
            lease = self.leases.get(budget.id)
            if lease is None or lease.room + lease.left < need * LEASE_SHARE:
                self._give_back(taken)
                return
            if lease.wk == window.wk and lease.left >= need and lease.expires > now:
                lease.left -= need
                lease.used_at = now
            else:
                try:
                    got = await self._take(budget, window, need)
                except Exception:  # the ledger is down: no slab, requests go one by one
                    got = None
                if got is None:
                    self._give_back(taken)
                    return
                lease = got
            taken.append((budget, lease, need))
            until = min(until, lease.expires)
            entries.append([budget.id, lease.hold_id, window.wk, per, unit, window.last])
            share = (lease.room + lease.left) / budget.limit if budget.limit else 0.0
            if tightest is None or share < tightest[0]:
                tightest = (share, budget, lease, window)
        verdict = Verdict(entries=entries)
        if tightest is not None:
            _, budget, lease, window = tightest
            static = self._headers.get(budget.id)
            if static is None or static[0] is not budget:
                static = self._headers[budget.id] = (budget, static_headers(budget))
            remaining = max(lease.room + lease.left, 0)
            reset_s = int(window.resets_at - started)
            verdict.headers = budget_headers(budget, remaining, reset_s, static[1])
        tokens = amounts["tokens"] or 0
        slab = Slab(verdict, taken, tokens, usd_bound, begins, ends, until)
        if match.slab is not None:  # another request opened one meanwhile
            self._close(match.slab, self.clock())
        match.slab = slab
        self._slabs.append(slab)

    def _close(self, slab: Slab, now: float) -> None:
        """What a slab did not admit goes back to its leases (if they still hold it)."""
        left, slab.left = slab.left, 0
        if left:
            for budget, lease, need in slab.taken:
                if self.leases.get(budget.id) is lease and lease.expires > now:
                    lease.left += need // SLAB_REQUESTS * left

    def _matching(self, budgets: tuple[Budget, ...], facts: RequestFacts) -> Match:
        if not budgets:
            return Match(())
        org_id = budgets[0].org_id
        state = self._match_state.get(org_id)
        if state is None or state[0] is not budgets:  # first, or reloaded since
            names = {b.scope.property[0] for b in budgets if b.scope.property is not None}
            state = self._match_state[org_id] = (budgets, tuple(sorted(names)), {})
        _, prop_names, matched = state
        key: tuple[Any, ...] = (facts.key_id, facts.user_id, facts.model, facts.upstream)
        if prop_names:
            key += tuple(map(facts.properties.get, prop_names))
        found = matched.get(key)
        if found is None:
            if len(matched) >= MATCH_CACHE:
                matched.clear()
            found = matched[key] = Match(tuple(b for b in budgets if b.scope.matches(facts)))
        return found

    async def _take(self, budget: Budget, window: Span, amount: int) -> Lease | None:
        """The lease ``amount`` was taken from, or None when the budget cannot cover it (the
        caller found the lease short: this refills it, one refill per budget at a time)."""
        lock = self.locks.get(budget.id)
        if lock is None:
            lock = self.locks[budget.id] = asyncio.Lock()
        async with lock:
            lease = self._usable(budget, window, amount)
            if lease is not None:
                return lease
            now = self.clock()
            lease = self.leases.get(budget.id)
            if lease is None or lease.wk != window.wk or lease.expires <= now:
                if lease is not None and lease.left and lease.expires > now:
                    self._release_later(budget.id, lease, lease.left)
                self._serial += 1
                hold = f"{self.worker}:{self._serial}:{budget.id}"
                lease = self.leases[budget.id] = Lease(hold, window.wk)
            elif now - lease.exhausted_at < EXHAUSTED_RECHECK_S:
                return None
            need = amount - lease.left
            want = max(need, lease.room // LEASE_SHARE)
            result = await self.ledger.reserve(
                budget.id, budget.limit, window, lease.hold_id, need, want, self.ttl_ms
            )
            if result is None:  # deleted since the cache loaded it: nothing to hold to
                lease.left += need
            else:
                granted, used = result
                lease.room = budget.limit - used
                if not granted:
                    lease.exhausted_at = now
                    return None
                lease.left += granted
                lease.expires = now + self.ttl_ms / 1000 * 0.9
            lease.left -= amount
            lease.used_at = now
            return lease

    def _usable(self, budget: Budget, window: Span, amount: int) -> Lease | None:
        lease = self.leases.get(budget.id)
        if lease is None or lease.wk != window.wk or lease.left < amount:
            return None
        now = self.clock()
        if lease.expires <= now:
            return None
        lease.left -= amount
        lease.used_at = now
        return lease

    def _give_back(self, taken: list[tuple[Budget, Lease, int]]) -> None:
        """A request refused by a later budget: what earlier ones reserved returns to them."""
        for budget, lease, amount in taken:
            if self.leases.get(budget.id) is lease:
                lease.left += amount

    def _release_later(self, budget_id: str, lease: Lease, amount: int) -> None:
        task = asyncio.ensure_future(self._release(budget_id, lease.wk, lease.hold_id, amount))
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    async def _release(self, budget_id: str, wk: int, hold_id: str, amount: int) -> None:
        try:
            await self.ledger.release(budget_id, wk, hold_id, amount)
        except Exception as exc:  # it expires anyway
            log.warning("could not release a budget reservation: %s", exc)

    async def release_idle(self, idle_s: float = IDLE_RELEASE_S) -> None:
        """Give back what leases hold unused, once idle (and everything with ``idle_s`` 0)."""
        now = self.clock()
        open_slabs = []
        for slab in self._slabs:
            if slab.left and now < slab.until and idle_s:
                open_slabs.append(slab)
            else:
                self._close(slab, now)
        self._slabs = open_slabs
        for budget_id, lease in list(self.leases.items()):
            if lease.left > 0 and now - lease.used_at >= idle_s and lease.expires > now:
                amount, lease.left = lease.left, 0
                await self._release(budget_id, lease.wk, lease.hold_id, amount)
            elif lease.expires <= now:  # its hold expired: a deleted or long-idle budget
                del self.leases[budget_id]
                self.locks.pop(budget_id, None)
                self._spans.pop(budget_id, None)
                self._headers.pop(budget_id, None)

    async def run(self) -> None:
        """Return idle leases forever; started by the app's lifespan."""
        while True:
            await asyncio.sleep(IDLE_RELEASE_S / 2)
            await self.release_idle()


def refusal_message(budget: Budget, window: Span, now: float) -> str:
    """What a person reads in their chat: which budget, its limit, when it resets."""
    when = datetime.fromtimestamp(window.resets_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    wait = _duration(window.resets_at - now)
    period = _period(budget)
    return (
        f"Budget '{budget.name}' is used up: its limit is {budget.limit_text()} {period}. "
        f"It resets at {when} (in {wait}). Ask your Heliograph admin to raise it."
    )


def _unpriced_message(budget: Budget, model: str | None) -> str:
    return (
        f"Budget '{budget.name}' limits spending in USD, and model {model or '(none)'!r} has no "
        "known price, so its cost cannot be counted. Ask your Heliograph admin to declare a "
        "price for it ([[prices]] in config.toml) or to set budget_unpriced = 'allow'."
    )


def _period(budget: Budget) -> str:
    if budget.window in ("day", "week", "month"):
        return f"per calendar {budget.window} ({budget.timezone})"
    return f"per rolling {budget.window[:-1]} hour(s)"


def _duration(seconds: float) -> str:
    seconds = max(int(seconds), 0)
    if seconds < 3600:
        return f"{max(seconds // 60, 1)} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days"


def budget_headers(
    budget: Budget,
    remaining: int,
    reset_s: int,
    static: tuple[bytes, bytes, bytes] | None = None,
) -> list[tuple[bytes, bytes]]:
    """Heliograph's remaining-budget headers and Helicone's rate-limit headers."""
    name, limit, policy = static or static_headers(budget)
    reset = str(max(reset_s, 0)).encode()
    if budget.unit == "usd":
        text = f"{remaining / NUSD_PER_USD:.6f}".rstrip("0").rstrip(".").encode()
        left = str(remaining // 10_000_000).encode()
    else:
        text = left = str(remaining).encode()
    return [
        (b"heliograph-budget", name),
        (b"heliograph-budget-remaining", text),
        (b"helicone-ratelimit-limit", limit),
        (b"helicone-ratelimit-remaining", left),
        (b"helicone-ratelimit-policy", policy),
        (b"helicone-ratelimit-reset", reset),
    ]


def static_headers(budget: Budget) -> tuple[bytes, bytes, bytes]:
    """The name, limit and policy headers of a budget, which do not change per request."""
    if budget.unit == "usd":
        limit, unit = budget.limit // 10_000_000, "cents"
    else:
        limit, unit = budget.limit, "request" if budget.unit == "requests" else "token"
    window_s = budget.rolling_s or {"day": 86400, "week": 7 * 86400}.get(budget.window, 31 * 86400)
    name = budget.name.encode("utf-8", "replace")[:200]
    return name, str(limit).encode(), f"{limit};w={window_s};u={unit}".encode()
