"""The job process's webhook sender against real aiohttp receivers: a stalling receiver holds
only its own slots (another endpoint is served meanwhile), redirects are never followed (a
3xx is a failed attempt), bodies are capped, a test event is signed like any delivery, and
stopping the sender gives its deliveries in flight back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from heliograph.alerts import signing
from heliograph.alerts.webhook_specs import check_endpoint
from heliograph.alerts.webhooks import Sender
from heliograph.config import Settings
from heliograph.store import orgs, webhooks
from heliograph.store import webhook_queue as queue
from heliograph.store.engine import make_engine, migrate
from query_support import insert, row
from webhook_receiver import Receiver


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.stop()


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(home=tmp_path, webhook_timeout_s=1.0, webhook_concurrency=2, **kw)


def hook(engine: Engine, org: str, name: str, url: str, **spec: Any) -> dict[str, Any]:
    checked = check_endpoint({"name": name, "url": url, **spec})
    made = webhooks.create_endpoint(engine, org, checked)
    made["secret"] = checked["secret"]
    return made


def stored(engine: Engine, org: str, n: int) -> list[str]:
    rows = [row(org, i, id=str(uuid.uuid4())) for i in range(n)]
    insert(engine, rows, bodies=True)
    with engine.begin() as conn:
        webhooks.add_to_outbox(conn, [(r["id"], org) for r in rows], frozenset({org}))
    return [r["id"] for r in rows]


async def run_until(sender: Sender, done: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await sender.tick()
        if done():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached")


async def test_a_stalling_receiver_does_not_hold_the_others(
    store: Engine, tmp_path: Path, receivers: list[Receiver]
) -> None:
    org = orgs.create_org(store, "a")
    stalling = Receiver(stall_first=100, stall_s=30).start()
    healthy = Receiver().start()
    receivers += [stalling, healthy]
    slow = hook(store, org, "slow", stalling.url())
    fine = hook(store, org, "fine", healthy.url())
    ids = stored(store, org, 5)
    sender = Sender(store, "owner-1", settings(tmp_path))
    try:
        started = time.monotonic()
        await run_until(sender, lambda: set(healthy.taken()) == set(ids))
        assert time.monotonic() - started < 5  # not after the stalled sends' timeouts
        assert len(sender.in_flight[slow["id"]]) <= 2  # the stalled endpoint's own slots
        assert len(stalling.all_hits()) <= 2
        for key, [hit] in healthy.taken().items():
            assert signing.verify(
                fine["secret"], hit.body, hit.headers["Heliograph-Signature"], int(time.time())
            )
            assert hit.json()["record"]["id"] == key
            assert "request_body" not in hit.json()["record"]  # no bodies unless asked
    finally:
        await sender.close()
    # stopping gave the in-flight deliveries back: due again, their attempt not counted
    log = queue.deliveries(store, org, slow["id"])
    assert {d["status"] for d in log} == {"pending"} and all(d["attempts"] == 0 for d in log)
    assert queue.claim(store, slow["id"], "owner-2", 10, 60_000)


async def test_redirects_are_failures_and_never_followed(
    store: Engine, tmp_path: Path, receivers: list[Receiver]
) -> None:
    org = orgs.create_org(store, "a")
    target = Receiver().start()
    bouncer = Receiver(redirect_to=target.url("elsewhere")).start()
    receivers += [target, bouncer]
    made = hook(store, org, "bounce", bouncer.url())
    [rid] = stored(store, org, 1)
    sender = Sender(store, "owner-1", settings(tmp_path))
    try:
        await run_until(
            sender, lambda: bool(queue.deliveries(store, org, made["id"])[0]["last_error"])
        )
    finally:
        await sender.close()
    [entry] = queue.deliveries(store, org, made["id"])
    assert entry["status"] == "pending" and entry["last_status"] == 307
    assert entry["last_error"].startswith("HTTP 307") and entry["request_id"] == rid
    assert target.all_hits() == []


async def test_bodies_are_capped_and_test_events_signed(
    store: Engine, tmp_path: Path, receivers: list[Receiver]
) -> None:
    org = orgs.create_org(store, "a")
    healthy = Receiver().start()
    receivers.append(healthy)
    made = hook(store, org, "bodies", healthy.url(), include_bodies=True)
    [rid] = stored(store, org, 1)
    test_id = queue.enqueue_test(store, org, made["id"])
    sender = Sender(store, "owner-1", settings(tmp_path, webhook_max_body_bytes=75))
    try:
        await run_until(sender, lambda: len(healthy.taken()) == 2)
    finally:
        await sender.close()
    record_doc = healthy.taken()[rid][0].json()
    # the stored request body is ~95 bytes of JSON: over the cap; the response (61) fits
    assert record_doc["record"]["request_body"] is None and record_doc["request_body"] is None
    assert record_doc["record"]["body_truncated"] is True
    assert record_doc["response_body"] == record_doc["record"]["response_body"] is not None
    [test_hit] = [h for k, hs in healthy.taken().items() if k != rid for h in hs]
    assert test_hit.json()["event"] == queue.TEST_EVENT and test_hit.json()["record"] is None
    assert test_hit.headers["helicone-signature"] == signing.body_hmac(
        made["secret"], test_hit.body
    )
    statuses = {d["id"]: d["status"] for d in queue.deliveries(store, org, made["id"])}
    assert statuses[test_id] == "delivered" and set(statuses.values()) == {"delivered"}
