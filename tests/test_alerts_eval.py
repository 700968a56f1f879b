"""Alert rules evaluated over injected clocks, on both dialects: ok -> firing -> (cooldown)
-> resolved -> ok, min requests, windows read from rollups and raw edges, and no duplicate
transition or notification when evaluated twice or by two evaluators at once."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from conftest import make_org
from heliograph.alerts import definitions, evaluate, metrics
from heliograph.alerts.definitions import DefinitionError
from heliograph.store import alert_state, alerts
from heliograph.store.rollups import HOUR_MS
from heliograph.store.schema_ops import alert_notifications
from query_support import insert, row

MIN = 60_000
# A fixed clock: "now" is 20 minutes into an hour, twelve hours ago (rows are in the past).
NOW = (1_760_000_000_000 // HOUR_MS) * HOUR_MS + 20 * MIN
BASE = "http://heliograph.test"


def traffic(engine: Engine, org: str, start: int, at: list[int], **kw: Any) -> None:
    insert(engine, [row(org, start + i, created_at=t, **kw) for i, t in enumerate(at)])


def channel(engine: Engine, org: str, name: str = "hook") -> dict[str, Any]:
    doc = {"name": name, "kind": "webhook", "url": "http://127.0.0.1:9/hook"}
    return alerts.create_channel(engine, org, definitions.check_channel(doc))


def rule(engine: Engine, org: str, **kw: Any) -> dict[str, Any]:
    doc = {
        "name": "errors",
        "metric": "error_rate",
        "window": "5m",
        "comparison": ">",
        "threshold": 0.5,
        "min_requests": 3,
        "channels": ["hook"],
        **kw,
    }
    checked = definitions.check_rule(doc, alerts.channel_refs(engine, org))
    return alerts.create_rule(engine, org, checked, "test")


def run(engine: Engine, now: int, tmp: Path) -> evaluate.Report:
    return evaluate.evaluate(engine, tmp, now, BASE)


def pending(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(alert_notifications))]


def test_firing_cooldown_resolved(engine: Engine, tmp_path: Path) -> None:
    org = make_org(engine, "alerts").id
    channel(engine, org)
    made = rule(engine, org, cooldown="10m")
    # 4 failures in the 5 minutes before NOW: error rate 1.0 over 4 requests
    traffic(engine, org, 0, [NOW - 4 * MIN + i * 1000 for i in range(4)], state="error", status=500)
    assert run(engine, NOW, tmp_path).transitions == 1
    got = alerts.get_rule(engine, org, made["id"])
    assert got is not None and got["state"] == "firing" and got["last_value"] == 1.0
    events = alerts.list_events(engine, org)
    assert [(e["kind"], e["value"], e["request_count"], e["notified"]) for e in events] == [
        ("firing", 1.0, 4, True)
    ]
    sent = pending(engine)
    assert len(sent) == 1 and sent[0]["payload"]["kind"] == "firing"
    assert sent[0]["payload"]["rule"]["name"] == "errors" and sent[0]["payload"]["value"] == 1.0
    # still breaching a minute later, evaluated twice: no new event, no new notification
    assert run(engine, NOW + MIN, tmp_path).transitions == 0
    assert run(engine, NOW + MIN, tmp_path).transitions == 0
    assert len(alerts.list_events(engine, org)) == 1 and len(pending(engine)) == 1
    # 6 minutes on, the failures left the window: resolved, notified
    later = NOW + 6 * MIN
    assert run(engine, later, tmp_path).transitions == 1
    got = alerts.get_rule(engine, org, made["id"])
    assert got is not None and got["state"] == "resolved"
    assert [e["kind"] for e in alerts.list_events(engine, org)] == ["resolved", "firing"]
    assert sorted(n["payload"]["kind"] for n in pending(engine)) == ["firing", "resolved"]
    # fails again within the 10-minute cooldown of the last firing notification: the firing
    # is recorded but held back; once the cooldown has passed it is notified, once
    again = NOW + 8 * MIN
    traffic(engine, org, 10, [again - 2 * MIN + i * 1000 for i in range(3)], state="error")
    assert run(engine, again, tmp_path).transitions == 1
    last = alerts.list_events(engine, org)[0]
    assert (last["kind"], last["notified"]) == ("firing", False)
    assert len(pending(engine)) == 2
    assert run(engine, NOW + 9 * MIN, tmp_path).transitions == 0  # still cooling down
    fired_at = NOW + 10 * MIN + 1000
    traffic(engine, org, 20, [fired_at - MIN + i * 1000 for i in range(3)], state="error")
    assert run(engine, fired_at, tmp_path).transitions == 1
    assert [e["notified"] for e in alerts.list_events(engine, org)][:2] == [True, False]
    assert len(pending(engine)) == 3
    # the traffic stops: resolved (notified, since its firing was), then ok after the cooldown
    quiet = fired_at + 6 * MIN
    assert run(engine, quiet, tmp_path).transitions == 1
    assert len(pending(engine)) == 4
    assert run(engine, quiet + 11 * MIN, tmp_path).transitions == 1  # resolved -> ok, silent
    got = alerts.get_rule(engine, org, made["id"])
    assert got is not None and got["state"] == "ok"
    assert len(pending(engine)) == 4 and len(alerts.list_events(engine, org)) == 5


def test_min_requests_gates_firing(engine: Engine, tmp_path: Path) -> None:
    org = make_org(engine, "few").id
    channel(engine, org)
    rule(engine, org, min_requests=5)
    traffic(engine, org, 0, [NOW - MIN - i * 1000 for i in range(4)], state="error")
    assert run(engine, NOW, tmp_path).transitions == 0
    got = alerts.list_rules(engine, org)[0]
    assert got["state"] == "ok" and got["last_count"] == 4 and got["last_value"] == 1.0
    traffic(engine, org, 10, [NOW - 30_000], state="error")
    assert run(engine, NOW, tmp_path).transitions == 1
    assert alerts.list_rules(engine, org)[0]["state"] == "firing"


def test_filter_and_long_window_read_rollups(engine: Engine, tmp_path: Path) -> None:
    org = make_org(engine, "costs").id
    # 3 hours of gpt-4o at $0.01 each, one per 10 minutes, and llama that costs nothing
    at = [NOW - 3 * HOUR_MS + i * 10 * MIN for i in range(18)]
    traffic(engine, org, 0, at, cost_known=True, cost_nusd=10_000_000)
    traffic(engine, org, 100, at, model="llama3.2", cost_known=True, cost_nusd=0)
    given = metrics.MetricInput(engine, tmp_path, org, {"model": "gpt-4o"}, NOW - 3 * HOUR_MS, NOW)
    reading = metrics.measure("cost_usd", given)
    assert reading.requests == 18 and reading.value == pytest.approx(0.18)
    everything = metrics.MetricInput(engine, tmp_path, org, {}, NOW - 3 * HOUR_MS, NOW)
    assert metrics.measure("requests", everything).value == 36.0
    # a property filter is read raw (windows up to an hour)
    traffic(engine, org, 200, [NOW - MIN], properties={"team": "red"}, cache_hit=True)
    red = metrics.MetricInput(engine, tmp_path, org, {"property.team": "red"}, NOW - 5 * MIN, NOW)
    assert metrics.measure("requests", red) == metrics.Reading(1.0, 1)
    assert metrics.measure("cache_hit_rate", red) == metrics.Reading(1.0, 1)
    p95 = metrics.measure("p95_latency_ms", everything)
    assert p95.value is not None and 75 <= p95.value <= 100  # every row is 100 ms


def test_two_evaluators_record_one_transition(engine: Engine, tmp_path: Path) -> None:
    org = make_org(engine, "race").id
    channel(engine, org)
    rule(engine, org)
    traffic(engine, org, 0, [NOW - MIN - i * 1000 for i in range(5)], state="error")
    rows = alerts.enabled_rules(engine)
    results: list[bool] = []
    barrier = threading.Barrier(4)

    def evaluator() -> None:
        barrier.wait()
        results.append(evaluate.evaluate_rule(engine, tmp_path, rows[0], NOW, BASE))

    threads = [threading.Thread(target=evaluator) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert len(alerts.list_events(engine, org)) == 1 and len(pending(engine)) == 1


def test_outbox_claims_once_and_backs_off(engine: Engine, tmp_path: Path) -> None:
    org = make_org(engine, "outbox").id
    channel(engine, org)
    rule(engine, org)
    traffic(engine, org, 0, [NOW - MIN - i * 1000 for i in range(5)], state="error")
    run(engine, NOW, tmp_path)
    first = alert_state.claim(engine, "a", NOW, 60_000, 10)
    assert len(first) == 1 and first[0]["kind"] == "webhook" and first[0]["attempts"] == 1
    assert alert_state.claim(engine, "b", NOW, 60_000, 10) == []  # held by a
    assert alert_state.finish(engine, first[0]["id"], "b", NOW, error="x") is False
    assert alert_state.finish(
        engine, first[0]["id"], "a", NOW, error="HTTP 500", retry_at=NOW + 5000
    )
    assert alert_state.claim(engine, "b", NOW + 1000, 60_000, 10) == []  # not due yet
    again = alert_state.claim(engine, "b", NOW + 5000, 60_000, 10)
    assert len(again) == 1 and again[0]["attempts"] == 2
    # a sender that died: its lease runs out and another takes the row over
    taken = alert_state.claim(engine, "c", NOW + 70_000, 60_000, 10)
    assert [t["id"] for t in taken] == [first[0]["id"]]
    assert alert_state.finish(engine, first[0]["id"], "c", NOW + 70_000)
    assert pending(engine)[0]["status"] == "sent"


def test_bad_definitions_name_the_field() -> None:
    refs = {"hook": "id-1"}
    base = {"name": "r", "metric": "error_rate", "window": "5m", "comparison": ">", "threshold": 1}
    cases = [
        ({"metric": "errors"}, "metric", "error_rate"),
        ({"comparison": "=="}, "comparison", ">="),
        ({"window": "3w"}, "window", "5m"),
        ({"window": "30s"}, "window", "1m"),
        ({"window": "8d"}, "window", "7d"),
        ({"threshold": "high"}, "threshold", "number"),
        ({"min_requests": -1}, "min_requests", "0 or more"),
        ({"channels": ["nope"]}, "channels", "hook"),
        ({"filter": {"modle": "x"}}, "filter.modle", "filter parameter"),
        ({"filter": {"min_status": "abc"}}, "filter.min_status", "number"),
        ({"filter": {"property.team": "red"}, "window": "2h"}, "window", "1h"),
        ({"metric": "writer_lag_s", "filter": {"model": "x"}}, "filter", "no filter"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"name": ""}, "name", "required"),
    ]
    for change, field, hint_text in cases:
        with pytest.raises(DefinitionError) as caught:
            definitions.check_rule({**base, **change}, refs)
        assert caught.value.field == field, change
        assert hint_text in str(caught.value), (change, str(caught.value))
    ok = definitions.check_rule({**base, "channels": ["hook"], "cooldown": "15m"}, refs)
    assert ok["window_s"] == 300 and ok["cooldown_s"] == 900 and ok["channels"] == ["id-1"]
    with pytest.raises(DefinitionError, match="kind: must be one of webhook, slack"):
        definitions.check_channel({"name": "x", "kind": "pager"})
    with pytest.raises(DefinitionError, match="url: must be an http"):
        definitions.check_channel({"name": "x", "kind": "slack", "url": "ftp://x"})
    with pytest.raises(DefinitionError, match="password: required with a username"):
        definitions.check_channel(
            {
                "name": "m",
                "kind": "email",
                "host": "h",
                "username": "u",
                "from": "a@b.c",
                "to": ["d@e.f"],
            }
        )
