"""Evaluating alert rules: read each rule's metric, decide its state, record transitions.

The state machine, per rule (``decide``), with ``breach`` meaning the metric has a value, the
window holds at least ``min_requests`` requests (for request metrics) and the comparison
holds:

* ok or resolved, breach -> **firing** (event ``firing``), notified unless a firing was
  notified less than ``cooldown`` ago (flapping): the event is then stored as held back, and
  notified once the cooldown has passed if the rule still fires;
* firing, no breach -> **resolved** (event ``resolved``), notified if its firing was;
* resolved, no breach for ``cooldown`` -> **ok** (silent);
* firing, breach -> nothing: a rule that stays firing is notified once.

Too few requests, or no value (no latencies measured), is no breach: a rule watching error
rate resolves when the traffic stops, rather than firing for ever on its last minutes.
``evaluate`` takes ``now`` so tests drive it with their own clock; a transition is stored by
``store.alert_state.transition`` only if the rule is still at the version read, so two
evaluators never record or notify one transition twice.
"""

from __future__ import annotations

import logging
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from heliograph.alerts.definitions import format_window
from heliograph.alerts.metrics import METRICS, MetricInput, Reading, measure
from heliograph.store import alert_state, alerts
from heliograph.store.alert_state import Transition

log = logging.getLogger("heliograph.alerts")

COMPARE: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}


@dataclass(frozen=True, slots=True)
class Report:
    evaluated: int = 0
    transitions: int = 0
    errors: int = 0


def breached(rule: dict[str, Any], reading: Reading) -> bool:
    if reading.value is None:
        return False
    if reading.requests is not None and reading.requests < rule["min_requests"]:
        return False
    return COMPARE[rule["comparison"]](reading.value, rule["threshold"])


def decide(rule: dict[str, Any], reading: Reading, now: int) -> Transition | None:
    """The transition ``reading`` calls for at ``now``, or None (see the module docstring)."""
    state, cooldown_ms = rule["state"], rule["cooldown_s"] * 1000
    fired = rule["last_fired_at"]
    cooled = fired is None or now - fired >= cooldown_ms
    firing_notified = fired is not None and fired >= (rule["state_since"] or 0)

    def change(new: str, kind: str | None, notified: bool, fired_at: int | None) -> Transition:
        return Transition(rule, new, kind, reading.value, reading.requests, now, notified, fired_at)

    if breached(rule, reading):
        if state != "firing":
            return change("firing", "firing", cooled, now if cooled else fired)
        if not firing_notified and cooled:  # held back by the cooldown, still firing
            return change("firing", "firing", True, now)
        return None
    if state == "firing":
        return change("resolved", "resolved", firing_notified, fired)
    if state == "resolved" and now - (rule["state_since"] or 0) >= cooldown_ms:
        return change("ok", None, False, fired)
    return None


def message(
    rule: dict[str, Any], change: Transition, event_id: str, base_url: str
) -> dict[str, Any]:
    """The notification as every channel renders it (stored with the queued notification)."""
    spec = METRICS.get(rule["metric"])
    return {
        "event_id": event_id,
        "kind": change.event_kind,
        "at": change.at,
        "rule": {
            "id": rule["id"],
            "name": rule["name"],
            "metric": rule["metric"],
            "metric_label": spec.label if spec else rule["metric"],
            "unit": spec.unit if spec else "",
            "comparison": rule["comparison"],
            "threshold": rule["threshold"],
            "window": format_window(rule["window_s"]),
            "filter": rule["filter"] or {},
        },
        "value": change.value,
        "request_count": change.count,
        "url": f"{base_url}/alerts",
    }


def evaluate_rule(
    engine: Engine,
    spool_root: Path,
    rule: dict[str, Any],
    now: int,
    base_url: str,
    redis_url: str | None = None,
) -> bool:
    """Measure one rule at ``now`` and store what follows; True if a transition was stored."""
    since = now - rule["window_s"] * 1000
    params = rule["filter"] or {}
    given = MetricInput(engine, spool_root, rule["org_id"], params, since, now, redis_url)
    reading = measure(rule["metric"], given)
    change = decide(rule, reading, now)
    if change is None:
        alert_state.record_reading(engine, rule["id"], reading.value, reading.requests, now, None)
        return False
    event_id = str(uuid.uuid4())
    payloads = {}
    if change.notified:
        live = {c["id"] for c in alerts.list_channels(engine, rule["org_id"]) if c["enabled"]}
        payload = message(rule, change, event_id, base_url)
        payloads = {cid: payload for cid in rule["channels"] or [] if cid in live}
    return alert_state.transition(engine, change, payloads, event_id)


def evaluate(
    engine: Engine, spool_root: Path, now: int, base_url: str, redis_url: str | None = None
) -> Report:
    """One evaluation of every enabled rule at ``now``; a rule that fails is logged, kept
    with its error (shown on the alerts page), and tried again next time."""
    evaluated = transitions = errors = 0
    for rule in alerts.enabled_rules(engine):
        evaluated += 1
        try:
            transitions += evaluate_rule(engine, spool_root, rule, now, base_url, redis_url)
        except Exception as exc:
            errors += 1
            log.exception("alert rule %s could not be evaluated", rule["id"])
            try:
                alert_state.record_reading(engine, rule["id"], None, None, now, str(exc)[:500])
            except Exception:  # the store is down: the next round tries again
                log.warning("could not record the error of alert rule %s", rule["id"])
    return Report(evaluated, transitions, errors)
