"""Budget settlements in Redis survive an outage and count once (the writer's side)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from conftest import free_port, redis_ready
from heliograph.budgets.ledger import RedisLedger, _keys
from heliograph.budgets.settle import BudgetSettler, Records
from heliograph.store.budgets import Settlement
from tcp_proxy import TcpProxy

REDIS = "redis://127.0.0.1:6379/3"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_ready(REDIS))
    yield c
    c.flushdb()
    c.close()


def _records(*items: Settlement) -> tuple[Records, set[str]]:
    """Each settlement as one newly stored record's, as the writer hands them over."""
    records = [
        (f"r{i}", ((s.budget_id, s.hold_id, s.wk, s.bucket, s.estimate, s.actual),))
        for i, s in enumerate(items)
    ]
    return records, {rid for rid, _ in records}


def _spent(client: redis.Redis, budget_id: str) -> dict[bytes, bytes]:
    return client.hgetall(_keys(budget_id, 7)[0])


def test_a_batch_is_applied_once_per_marker(client: redis.Redis) -> None:
    ledger = RedisLedger(REDIS)
    holds = _keys("b1", 7)[1]
    client.hset(holds, "h1", 500)
    items = [Settlement("b1", "h1", 7, 300, 42, 120)]
    assert ledger.settle(items, "batch-1") is True
    assert ledger.settle(items, "batch-1") is False  # a re-send after a lost reply
    assert _spent(client, "b1") == {b"42": b"120"}
    assert client.hget(holds, "h1") == b"200"  # the estimate came off the hold, once
    assert ledger.settle(items, "batch-2") is True  # another batch counts
    assert _spent(client, "b1") == {b"42": b"240"}
    assert client.hget(holds, "h1") is None  # held 200, lowered by 300: gone


def test_settlements_wait_through_an_outage_and_are_sent_once(client: redis.Redis) -> None:
    proxy = TcpProxy("127.0.0.1", 6379, free_port()).start()
    try:
        settler = BudgetSettler(f"redis://127.0.0.1:{proxy.port}/3")
        settler.after_commit(*_records(Settlement("b2", None, 7, 0, 1, 5)))
        assert _spent(client, "b2") == {b"1": b"5"} and settler.waiting == 0
        proxy.down()
        settler.after_commit(*_records(Settlement("b2", None, 7, 0, 1, 7)))
        settler.after_commit(*_records(Settlement("b2", None, 7, 0, 2, 11)))
        assert settler.waiting == 2 and settler.failures >= 1
        assert _spent(client, "b2") == {b"1": b"5"}
        proxy.up()
        settler.next_try = 0.0  # the backoff has passed
        settler.retry()
        assert settler.waiting == 0 and settler.failures == 0
        assert _spent(client, "b2") == {b"1": b"12", b"2": b"11"}
        settler.retry()  # nothing left: nothing sent twice
        assert _spent(client, "b2") == {b"1": b"12", b"2": b"11"}
    finally:
        proxy.down()


def test_the_backlog_is_bounded(client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("heliograph.budgets.settle.MAX_PENDING", 3)
    monkeypatch.setattr("heliograph.budgets.settle.CHUNK", 2)
    proxy = TcpProxy("127.0.0.1", 6379, free_port()).start()
    proxy.down()
    settler = BudgetSettler(f"redis://127.0.0.1:{proxy.port}/3")
    for bucket in range(3):
        items = [Settlement("b3", None, 7, 0, bucket, 1), Settlement("b4", None, 7, 0, bucket, 2)]
        settler.next_try = 0.0
        settler.after_commit(*_records(*items))
    assert settler.waiting == 2 and settler.dropped == 4  # the oldest chunks went first
    proxy.up()
    settler.next_try = 0.0
    settler.retry()
    assert _spent(client, "b3") == {b"2": b"1"} and _spent(client, "b4") == {b"2": b"2"}
    proxy.down()
