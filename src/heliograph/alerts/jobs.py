"""The alerts' work in the job process: config sync, evaluation rounds, notification sends.

``heliograph serve`` syncs the rules and channels of ``config.toml`` into the store when it
starts (``sync_config``), before it serves. One periodic tick (``TICK_S``, registered in
``jobs.kinds``): every tick sends the due notifications of the outbox (so a firing is delivered within a second or two of its transition); and when
``alerts_interval_s`` has passed since this process last evaluated, it evaluates every rule.
Several job processes (replicas) each evaluate and send: transitions and sends are taken
through guarded UPDATEs in the store (``store.alert_state``), so nothing happens twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp

from heliograph.alerts import channels, definitions, evaluate
from heliograph.store import alert_state, alerts, orgs

log = logging.getLogger("heliograph.alerts")

TICK_S = 1.0
LEASE_MS = 180_000  # longer than any send (timeouts are at most 120 s)
SEND_BATCH = 20
MAX_ATTEMPTS = 6
BACKOFF_MS = 5_000  # 5 s, 10 s, 20 s, 40 s, 80 s between attempts
MAX_BACKOFF_MS = 3_600_000


@dataclass
class _State:
    last_evaluated: int | None = None
    session: aiohttp.ClientSession | None = None


def retry_at(attempts: int, now: int) -> int | None:
    """When the attempt after ``attempts`` failed ones runs, or None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    delay: int = min(BACKOFF_MS * 2 ** (attempts - 1), MAX_BACKOFF_MS)
    return now + delay


def sync_config(engine: Any, settings: Any) -> bool:
    """Put ``settings.alerts`` into the default organization's store; False: no org yet."""
    config = settings.alerts or {}
    org_id = orgs.first_org(engine)
    if org_id is None:
        return False
    checked = [definitions.check_channel(c) for c in config.get("channels", [])]
    names = {c["name"]: c["name"] for c in checked}
    rules = []
    for doc in config.get("rules", []):
        rule = definitions.check_rule(doc, names)
        rules.append(({k: v for k, v in rule.items() if k != "channels"}, rule["channels"]))
    alerts.sync_config(engine, org_id, checked, rules)
    return True


async def deliver(
    engine: Any,
    owner: str,
    now: int,
    session: aiohttp.ClientSession,
    timeout_s: float,
    ssl_context: Any = None,
) -> tuple[int, int]:
    """Send the due notifications: (sent, failed attempts)."""
    claimed = await asyncio.to_thread(alert_state.claim, engine, owner, now, LEASE_MS, SEND_BATCH)
    sent = failed = 0

    async def one(row: dict[str, Any]) -> None:
        nonlocal sent, failed
        error: str | None = None
        if row["kind"] is None:
            error = "the channel was deleted"
        elif not row["enabled"]:
            error = "the channel is disabled"
        else:
            try:
                await channels.send(row, row["payload"], row["id"], session, timeout_s, ssl_context)
            except channels.SendError as exc:
                error = str(exc)
            except Exception as exc:  # never let one channel stop the others
                log.exception("alert notification %s failed", row["id"])
                error = f"unexpected error: {type(exc).__name__}"
        done = alerts.now_ms()
        later = None if error is None or row["kind"] is None else retry_at(row["attempts"], done)
        await asyncio.to_thread(
            alert_state.finish, engine, row["id"], owner, done, error=error, retry_at=later
        )
        if error is None:
            sent += 1
        else:
            failed += 1
            log.warning("alert notification via %s failed: %s", row["channel_name"], error)

    await asyncio.gather(*(one(row) for row in claimed))
    return sent, failed


async def alerts_tick(context: Any) -> None:
    """The job process's periodic task (``context`` is a ``jobs.runner.JobContext``)."""
    state: _State = context.extras.setdefault("alerts", _State())
    settings, engine = context.settings, context.engine
    if state.session is None:
        state.session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        context.extras.setdefault("closers", []).append(state.session.close)
    now = alerts.now_ms()
    interval_ms = settings.alerts_interval_s * 1000
    if state.last_evaluated is None or now - state.last_evaluated >= interval_ms:
        state.last_evaluated = now
        report = await asyncio.to_thread(
            evaluate.evaluate,
            engine,
            settings.spool_dir,
            now,
            settings.base_url(),
            settings.redis_url,
        )
        if report.transitions or report.errors:
            log.info("alerts: %s", report)
    await deliver(
        engine, context.owner, alerts.now_ms(), state.session, settings.alerts_send_timeout_s
    )


def register(registry: Any) -> None:
    """Add the tick to the job process (``jobs.kinds.register_all``)."""
    registry.run_periodic("alerts", alerts_tick, TICK_S)
