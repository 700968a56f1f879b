"""Record webhooks in the store, on SQLite and PostgreSQL: the outbox the writer fills, the
fan-out with each endpoint's filter, leases, outcomes, backoff, giving up, the log, config sync."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, update

from heliograph.alerts.webhook_specs import check_endpoint
from heliograph.store import orgs, webhooks
from heliograph.store import webhook_queue as queue
from heliograph.store.inserts import insert_batch, pack_records
from heliograph.store.schema_ops import webhook_deliveries, webhook_outbox
from query_support import row


@pytest.fixture
def two_orgs(engine: Engine) -> tuple[str, str]:
    return orgs.create_org(engine, "a"), orgs.create_org(engine, "b")


def endpoint(engine: Engine, org: str, name: str = "hook", **spec: Any) -> dict[str, Any]:
    checked = check_endpoint({"name": name, "url": "http://127.0.0.1:9/hook", **spec})
    return webhooks.create_endpoint(engine, org, checked)


def store_records(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """As the writer does: records and their outbox rows in one transaction, for the
    organizations with an enabled endpoint as of that transaction."""
    with engine.begin() as conn:
        new = insert_batch(conn, pack_records(rows, [], []))
        orgs = webhooks.enabled_orgs(conn)
        webhooks.add_to_outbox(conn, [(r["id"], r["org_id"]) for r in rows if r["id"] in new], orgs)


def enabled(engine: Engine) -> frozenset[str]:
    with engine.connect() as conn:
        return webhooks.enabled_orgs(conn)


def records(org: str, n: int, **kw: Any) -> list[dict[str, Any]]:
    return [row(org, i, id=str(uuid.uuid4()), **kw) for i in range(n)]


def outbox(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(webhook_outbox)).scalar_one())


def delivered_ids(engine: Engine, endpoint_id: str) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                select(webhook_deliveries.c.request_id).where(
                    webhook_deliveries.c.endpoint_id == endpoint_id
                )
            ).scalars()
        )


def test_outbox_only_for_orgs_with_enabled_endpoints(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, b = two_orgs
    assert enabled(engine) == frozenset()
    hook = endpoint(engine, a)
    assert enabled(engine) == {a}
    webhooks.update_endpoint(engine, a, hook["id"], {"enabled": False})
    assert enabled(engine) == frozenset()
    webhooks.update_endpoint(engine, a, hook["id"], {"enabled": True})
    store_records(engine, records(a, 3) + records(b, 2))
    assert outbox(engine) == 3
    # a replayed batch adds nothing (its records are not new)
    again = records(a, 1)
    store_records(engine, again)
    store_records(engine, again)
    assert outbox(engine) == 4


def test_fan_out_applies_each_filter_in_sql(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    every = endpoint(engine, a, "every")
    mini = endpoint(engine, a, "mini", filter={"model": "gpt-4o-mini"})
    red = endpoint(engine, a, "red", filter={"property.team": "red"})
    other = endpoint(engine, b, "other")
    off = endpoint(engine, a, "off", enabled=False)
    big = records(a, 3, model="gpt-4o")
    small = records(a, 2, model="gpt-4o-mini")
    rows = big + small
    with engine.begin() as conn:  # one record of team red, in the side table as the writer does
        from heliograph.store.inserts import insert_records

        red_row = row(a, 9, id=str(uuid.uuid4()), properties={"team": "red"})
        insert_records(
            conn,
            [red_row],
            [],
            [{"request_id": red_row["id"], "name": "team", "value": "red", "org_id": a}],
        )
        webhooks.add_to_outbox(conn, [(red_row["id"], a)], frozenset({a}))
    store_records(engine, rows)
    b_rows = records(b, 2)
    store_records(engine, b_rows)
    created = queue.fan_out(engine)
    assert outbox(engine) == 0
    assert delivered_ids(engine, every["id"]) == {r["id"] for r in rows} | {red_row["id"]}
    assert delivered_ids(engine, mini["id"]) == {r["id"] for r in small}
    assert delivered_ids(engine, red["id"]) == {red_row["id"]}
    assert delivered_ids(engine, other["id"]) == {r["id"] for r in b_rows}
    assert delivered_ids(engine, off["id"]) == set()
    assert created == 6 + 2 + 1 + 2
    assert queue.fan_out(engine) == 0


def test_fan_out_twice_at_once_creates_each_delivery_once(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, _ = two_orgs
    hook = endpoint(engine, a)
    rows = records(a, 50)
    store_records(engine, rows)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(queue.fan_out(engine))
        except BaseException as exc:  # SQLite may refuse the second writer: it retries later
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.fan_out(engine)
    assert delivered_ids(engine, hook["id"]) == {r["id"] for r in rows}
    with engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(webhook_deliveries)).scalar_one()
    assert n == 50


def test_claim_leases_each_delivery_to_one_owner(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    hook = endpoint(engine, a)
    store_records(engine, records(a, 5))
    queue.fan_out(engine)
    assert queue.enabled_endpoints(engine) == [hook["id"]]
    first = queue.claim(engine, hook["id"], "p1", 3, 60_000)
    second = queue.claim(engine, hook["id"], "p2", 10, 60_000)
    assert len(first) == 3 and len(second) == 2
    assert not {c.id for c in first} & {c.id for c in second}
    assert queue.claim(engine, hook["id"], "p3", 10, 60_000) == []
    assert all(c.attempts == 1 and c.url == hook["url"] for c in first)
    # a lease that ran out (its holder died mid-send) is taken over, as a new attempt
    with engine.begin() as conn:
        conn.execute(
            update(webhook_deliveries)
            .where(webhook_deliveries.c.id == first[0].id)
            .values(lease_until=1)
        )
    taken = queue.claim(engine, hook["id"], "p3", 10, 60_000)
    assert [c.id for c in taken] == [first[0].id] and taken[0].attempts == 2
    # the old holder can no longer record an outcome
    assert queue.finish(engine, first[0], "p1", http_status=200, error=None, retry_ms=10**9) is None
    assert (
        queue.finish(engine, taken[0], "p3", http_status=200, error=None, retry_ms=10**9)
        == "delivered"
    )
    log = queue.deliveries(engine, a, hook["id"])
    done = next(r for r in log if r["id"] == first[0].id)
    assert done["status"] == "delivered" and done["attempts"] == 2 and done["last_status"] == 200
    assert webhooks.get_endpoint(engine, a, hook["id"])["last_success_at"] is not None  # type: ignore[index]


def test_failure_backs_off_then_gives_up(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    hook = endpoint(engine, a)
    store_records(engine, records(a, 1))
    queue.fan_out(engine)
    [entry] = queue.claim(engine, hook["id"], "p", 5, 60_000)
    status = queue.finish(
        engine, entry, "p", http_status=500, error="HTTP 500: boom", retry_ms=10**9
    )
    assert status == "pending"
    [logged] = queue.deliveries(engine, a, hook["id"])
    assert logged["last_error"] == "HTTP 500: boom" and logged["last_status"] == 500
    assert logged["next_attempt_at"] > logged["updated_at"]  # backoff: not due at once
    assert queue.claim(engine, hook["id"], "p", 5, 60_000) == []
    endpoint_row = webhooks.get_endpoint(engine, a, hook["id"])
    assert endpoint_row is not None and endpoint_row["last_error"] == "HTTP 500: boom"
    with engine.begin() as conn:
        conn.execute(update(webhook_deliveries).values(next_attempt_at=0))
    [again] = queue.claim(engine, hook["id"], "p", 5, 60_000)
    assert again.attempts == 2
    assert (
        queue.finish(engine, again, "p", http_status=None, error="timed out", retry_ms=0)
        == "failed"
    )
    assert queue.claim(engine, hook["id"], "p", 5, 60_000) == []
    assert queue.deliveries(engine, a, hook["id"], status="failed")[0]["attempts"] == 2


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    for attempts, full in ((1, 1000), (2, 2000), (5, 16000), (40, queue.BACKOFF_CAP_S * 1000)):
        waits = [queue.backoff_ms(attempts) for _ in range(50)]
        assert all(full / 2 <= w <= full for w in waits)


def test_release_gives_back_without_counting(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    hook = endpoint(engine, a)
    store_records(engine, records(a, 1))
    queue.fan_out(engine)
    [entry] = queue.claim(engine, hook["id"], "p", 5, 60_000)
    queue.release(engine, entry, "p")
    [again] = queue.claim(engine, hook["id"], "q", 5, 60_000)
    assert again.id == entry.id and again.attempts == 1


def test_disabled_endpoint_is_not_sent_and_test_events(
    engine: Engine, two_orgs: tuple[str, str]
) -> None:
    a, b = two_orgs
    hook = endpoint(engine, a)
    delivery = queue.enqueue_test(engine, a, hook["id"])
    webhooks.update_endpoint(engine, a, hook["id"], {"enabled": False})
    assert queue.enabled_endpoints(engine) == []
    assert queue.claim(engine, hook["id"], "p", 5, 60_000) == []
    webhooks.update_endpoint(engine, a, hook["id"], {"enabled": True})
    [entry] = queue.claim(engine, hook["id"], "p", 5, 60_000)
    assert entry.id == delivery and entry.event == queue.TEST_EVENT
    assert queue.deliveries(engine, b, hook["id"]) == []  # another org sees nothing


def test_prune_keeps_pending_and_recent(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    hook = endpoint(engine, a)
    store_records(engine, records(a, 3))
    queue.fan_out(engine)
    claimed = queue.claim(engine, hook["id"], "p", 2, 60_000)
    for c in claimed:
        queue.finish(engine, c, "p", http_status=200, error=None, retry_ms=10**9)
    assert queue.prune(engine, 0) == 0
    assert queue.prune(engine, webhooks.now_ms() + 1) == 2
    assert [r["status"] for r in queue.deliveries(engine, a, hook["id"])] == ["pending"]
    assert queue.counts(engine, a) == {hook["id"]: {"pending": 1}}


def test_names_unique_and_delete_drops_the_log(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, b = two_orgs
    hook = endpoint(engine, a)
    with pytest.raises(webhooks.DuplicateName):
        endpoint(engine, a)
    endpoint(engine, b)  # another org may use the name
    queue.enqueue_test(engine, a, hook["id"])
    assert webhooks.get_endpoint(engine, b, hook["id"]) is None
    assert not webhooks.delete_endpoint(engine, b, hook["id"])
    assert webhooks.delete_endpoint(engine, a, hook["id"])
    assert queue.deliveries(engine, a, hook["id"]) == []
    assert "secret" not in webhooks.list_endpoints(engine, b)[0]


def test_config_sync_creates_updates_and_removes(engine: Engine, two_orgs: tuple[str, str]) -> None:
    a, _ = two_orgs
    api_made = endpoint(engine, a, "api-one")
    one = check_endpoint({"name": "cfg", "url": "https://example.test/a", "secret": "s" * 20})
    webhooks.sync_config(engine, a, [one])
    [cfg] = [e for e in webhooks.list_endpoints(engine, a) if e["name"] == "cfg"]
    assert cfg["source"] == "config"
    with pytest.raises(webhooks.FromConfig):
        webhooks.update_endpoint(engine, a, cfg["id"], {"enabled": False})
    with pytest.raises(webhooks.FromConfig):
        webhooks.delete_endpoint(engine, a, cfg["id"])
    changed = {**one, "url": "https://example.test/b"}
    webhooks.sync_config(engine, a, [changed])
    again = webhooks.get_endpoint(engine, a, cfg["id"], with_secret=True)
    assert again is not None and again["url"] == "https://example.test/b"
    assert again["secret"] == "s" * 20
    webhooks.sync_config(engine, a, [])
    names = [e["name"] for e in webhooks.list_endpoints(engine, a)]
    assert names == ["api-one"] and api_made["source"] == "api"
