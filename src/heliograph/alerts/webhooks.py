"""Record webhooks: each stored record (or those matching a filter) POSTed to a URL, durably.

The writer puts one outbox row per new record in the transaction that stores it (for
organizations with an enabled endpoint only; ``store.webhooks``). A periodic tick of the job
process (``webhooks_tick``, registered in ``jobs.kinds``) fans the outbox out to deliveries,
one per matching endpoint, then claims due deliveries endpoint by endpoint under a lease and
sends each in its own task. Sends are bounded per endpoint (``webhook_concurrency``) and each
attempt by ``webhook_timeout_s``, so a receiver that stalls holds only its own slots, never the
tick nor the other endpoints, and the writer's cost does not change when a receiver is down.
A failed attempt is retried with exponential backoff and jitter until ``webhook_retry_hours``
after the record was queued, then marked failed; a process killed mid-send lets its lease run
out and the delivery is sent again: at-least-once, with the record id as the idempotency key.

The body is the record exactly as ``GET /api/v1/requests/<id>`` answers it (the same
``store.requests.get_request``; headers there are already redacted, and no key or secret is
part of a record), without bodies unless the endpoint asks for them, and then each body only
up to ``webhook_max_body_bytes``. Helicone receivers keep working: the body also carries
Helicone's top-level ``request_id``, ``user_id``, ``model``, ``request_body`` and
``response_body`` fields and the request carries ``helicone-signature`` (``alerts.signing``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from sqlalchemy import Engine

from heliograph.alerts import signing
from heliograph.config import Settings
from heliograph.store import webhook_queue as queue
from heliograph.store.requests import get_request
from heliograph.store.webhook_queue import Claimed
from heliograph.store.webhooks import now_ms

log = logging.getLogger("heliograph.webhooks")

TICK_S = 1.0
LEASE_MARGIN_MS = 10_000  # beyond the attempt's timeout: the lease outlives any live send
PRUNE_EVERY_S = 600.0
RESPONSE_BYTES = 4096  # of a receiver's answer, kept in the log when it refuses
USER_AGENT = "Heliograph-Webhooks/1"
BODY_KEYS = ("request_body", "response_body")


def payload(engine: Engine, entry: Claimed, body_cap: int) -> dict[str, Any] | None:
    """The JSON document for a delivery, or None when its record is no longer stored."""
    key = entry.request_id
    if entry.event == queue.TEST_EVENT:
        return {"event": entry.event, "id": key, "idempotency_key": key, "record": None}
    record = get_request(engine, entry.org_id, key)
    if record is None:
        return None
    for name in BODY_KEYS:
        value = record.pop(name, None)
        if entry.include_bodies:
            if value is not None and len(orjson.dumps(value)) > body_cap:
                value, record["body_truncated"] = None, True
            record[name] = value
    doc: dict[str, Any] = {
        "event": entry.event,
        "id": key,
        "idempotency_key": key,
        # Helicone's webhook fields, for receivers written against it
        "request_id": key,
        "user_id": record.get("user_id"),
        "model": record.get("model"),
    }
    if entry.include_bodies:
        doc["request_body"] = record.get("request_body")
        doc["response_body"] = record.get("response_body")
    doc["record"] = record
    return doc


def headers(secret: str, body: bytes, key: str, now: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": key,
        "Heliograph-Delivery-Id": key,
        signing.HEADER: signing.signature(secret, body, now),
        signing.HELICONE_HEADER: signing.body_hmac(secret, body),
    }


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, hdrs: dict[str, str], timeout_s: float
) -> tuple[int | None, str | None]:
    """One attempt: (HTTP status, error or None when the receiver took it). Never follows a
    redirect: a 3xx is an answer, and a failed one."""
    try:
        async with session.post(
            url,
            data=body,
            headers=hdrs,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            if 200 <= response.status < 300:
                return response.status, None
            text = (await response.content.read(RESPONSE_BYTES)).decode("utf-8", "replace")
            return response.status, f"HTTP {response.status}: {text[:300]}".strip()
    except TimeoutError:
        return None, f"timed out after {timeout_s:g} s"
    except aiohttp.ClientError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]


@dataclass
class Sender:
    """The job process's webhook sender: its sends in flight, per endpoint."""

    engine: Engine
    owner: str
    settings: Settings
    session: aiohttp.ClientSession | None = None
    in_flight: dict[str, set[asyncio.Task[None]]] = field(default_factory=dict)
    pruned_at: float = float("-inf")

    @property
    def lease_ms(self) -> int:
        return int(self.settings.webhook_timeout_s * 1000) + LEASE_MARGIN_MS

    async def tick(self) -> int:
        """Fan out, then start sends of due deliveries for every endpoint with room."""
        await asyncio.to_thread(queue.fan_out, self.engine)
        if self.session is None:
            self.session = aiohttp.ClientSession()
        started = 0
        for endpoint_id in await asyncio.to_thread(queue.enabled_endpoints, self.engine):
            running = self.in_flight.setdefault(endpoint_id, set())
            room = self.settings.webhook_concurrency - len(running)
            if room <= 0:
                continue
            claimed = await asyncio.to_thread(
                queue.claim, self.engine, endpoint_id, self.owner, room, self.lease_ms
            )
            for entry in claimed:
                task = asyncio.create_task(self.deliver(entry))
                running.add(task)
                task.add_done_callback(running.discard)
            started += len(claimed)
        if time.monotonic() - self.pruned_at > PRUNE_EVERY_S:
            self.pruned_at = time.monotonic()
            cutoff = now_ms() - int(self.settings.webhook_log_days * 86_400_000)
            await asyncio.to_thread(queue.prune, self.engine, cutoff)
        return started

    async def deliver(self, entry: Claimed) -> None:
        settings, session = self.settings, self.session
        assert session is not None
        try:
            doc = await asyncio.to_thread(
                payload, self.engine, entry, settings.webhook_max_body_bytes
            )
            status: int | None
            error: str | None
            if doc is None:
                status, error, retry_ms = None, "the record is no longer stored", 0
            else:
                body = orjson.dumps(doc)
                hdrs = headers(entry.secret, body, entry.request_id, int(time.time()))
                status, error = await post(
                    session, entry.url, body, hdrs, settings.webhook_timeout_s
                )
                retry_ms = int(settings.webhook_retry_hours * 3_600_000)
            outcome = await asyncio.to_thread(
                queue.finish,
                self.engine,
                entry,
                self.owner,
                http_status=status,
                error=error,
                retry_ms=retry_ms,
            )
            if outcome == "failed":
                log.warning("webhook delivery %s gave up: %s", entry.id, error)
        except asyncio.CancelledError:  # the job process stops: the next one sends it
            with contextlib.suppress(Exception):
                await asyncio.to_thread(queue.release, self.engine, entry, self.owner)
            raise
        except Exception:  # the store went away: the lease runs out and it is sent again
            log.exception("webhook delivery %s could not be recorded", entry.id)

    async def close(self) -> None:
        tasks = [t for running in self.in_flight.values() for t in running]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.session is not None:
            await self.session.close()


def sender_for(context: Any) -> Sender:
    """The job process's one sender, kept in its context (closed when the process stops)."""
    sender: Sender | None = context.extras.get("webhooks")
    if sender is None:
        sender = Sender(context.engine, context.owner, context.settings)
        context.extras["webhooks"] = sender
        context.extras.setdefault("closers", []).append(sender.close)
    return sender


async def webhooks_tick(context: Any) -> None:
    """The job process's periodic task (a ``jobs.runner.JobContext``)."""
    started = await sender_for(context).tick()
    if started:
        log.debug("webhooks: %d deliveries started", started)


def register(registry: Any) -> None:
    """Add the tick to the job process (``jobs.kinds.register_all``)."""
    registry.run_periodic("webhooks", webhooks_tick, TICK_S)
