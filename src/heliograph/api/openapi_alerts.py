"""The alerts part of the OpenAPI document: rules, channels (with the test send), history.

Kept apart from ``openapi`` like the online evaluation part; ``openapi.document`` merges it.
Metric names, comparisons and channel kinds come from the tables the checks read.
"""

from __future__ import annotations

from typing import Any

from heliograph.alerts.definitions import CHANNEL_KINDS, COMPARISONS, SMTP_SECURITY
from heliograph.alerts.metrics import METRICS
from heliograph.api.openapi import error, op, path_param, q
from heliograph.api.openapi_schemas import BOOL, INT, NUM, STR, nullable, obj, ref

TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
DURATION: dict[str, Any] = {
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": r"^\s*\d+\s*[smhd]?\s*$"},
    ],
    "description": 'Seconds, or a duration like "5m", "1h", "7d".',
}
NO_RULE = {"404": error("No such rule in this organization.")}
NO_CHANNEL = {"404": error("No such channel in this organization.")}
CONFLICT = {"409": error("Another one has this name, or it comes from config.toml.")}
FILTER: dict[str, Any] = {
    "type": "object",
    "additionalProperties": STR,
    "description": 'The Requests page\'s filter parameters, e.g. {"model": "gpt-4o"}. Windows '
    "over 1h read the rollups and filter only by model, provider, upstream, user_id, task.",
}
RULE_FIELDS: dict[str, Any] = {
    "name": STR,
    "metric": {"enum": list(METRICS)},
    "filter": FILTER,
    "window": DURATION,
    "comparison": {"enum": list(COMPARISONS)},
    "threshold": NUM,
    "min_requests": {"type": "integer", "minimum": 0},
    "cooldown": DURATION,
    "channels": {"type": "array", "items": STR, "description": "Channel names or ids."},
    "enabled": BOOL,
}
CHANNEL_FIELDS: dict[str, Any] = {
    "name": STR,
    "kind": {"enum": list(CHANNEL_KINDS)},
    "enabled": BOOL,
    "url": {
        "type": "string",
        "description": "Webhook, Slack or Discord URL (Slack and Discord "
        "URLs are secrets: never shown back).",
    },
    "secret": {"type": "string", "description": "Webhook signing secret (Heliograph-Signature)."},
    "timeout_s": NUM,
    "host": STR,
    "port": INT,
    "security": {"enum": list(SMTP_SECURITY)},
    "username": STR,
    "password": STR,
    "from": STR,
    "to": {"type": "array", "items": STR},
}


def schemas() -> dict[str, Any]:
    return {
        "AlertRule": obj(
            {
                "id": STR,
                "name": STR,
                "metric": STR,
                "filter": {"type": "object", "additionalProperties": STR},
                "window": STR,
                "window_s": INT,
                "comparison": STR,
                "threshold": NUM,
                "min_requests": INT,
                "cooldown": STR,
                "cooldown_s": INT,
                "channels": {"type": "array", "items": STR},
                "enabled": BOOL,
                "source": {"enum": ["api", "config"]},
                "state": {"enum": ["ok", "firing", "resolved"]},
                "state_since": nullable(TIME),
                "last_value": nullable(NUM),
                "last_count": nullable(INT),
                "last_evaluated_at": nullable(TIME),
                "last_error": nullable(STR),
                "created_at": TIME,
                "updated_at": TIME,
            }
        ),
        "AlertChannel": obj(
            {
                "id": STR,
                "name": STR,
                "kind": STR,
                "enabled": BOOL,
                "source": {"enum": ["api", "config"]},
                "config": {"type": "object"},
                "secrets": {
                    "type": "object",
                    "additionalProperties": STR,
                    "description": "A masked hint of each secret, never the secret.",
                },
                "created_at": TIME,
                "updated_at": TIME,
            }
        ),
        "AlertEvent": obj(
            {
                "id": STR,
                "rule_id": STR,
                "rule_name": STR,
                "kind": {"enum": ["firing", "resolved"]},
                "metric": STR,
                "comparison": STR,
                "threshold": NUM,
                "value": nullable(NUM),
                "request_count": nullable(INT),
                "notified": BOOL,
                "at": TIME,
                "deliveries": {
                    "type": "array",
                    "items": obj(
                        {
                            "channel_id": STR,
                            "channel": nullable(STR),
                            "status": STR,
                            "attempts": INT,
                            "last_error": nullable(STR),
                            "sent_at": nullable(TIME),
                        }
                    ),
                },
            }
        ),
    }


def paths() -> dict[str, Any]:
    item = path_param("item_id")
    rule_body = obj(
        RULE_FIELDS,
        "name",
        "metric",
        "window",
        "comparison",
        "threshold",
        additionalProperties=False,
    )
    return {
        "/api/v1/alerts/rules": {
            "get": op(
                "List the alert rules with their state.",
                "read",
                obj({"data": {"type": "array", "items": ref("AlertRule")}}),
            ),
            "post": op(
                "Create an alert rule, evaluated every minute by the job process.",
                "admin",
                ref("AlertRule"),
                status="201",
                body=rule_body,
                errors=CONFLICT,
            ),
        },
        "/api/v1/alerts/rules/{item_id}": {
            "get": op("One rule.", "read", ref("AlertRule"), params=[item], errors=NO_RULE),
            "patch": op(
                "Change a rule (only the fields given).",
                "admin",
                ref("AlertRule"),
                params=[item],
                body=obj(RULE_FIELDS, additionalProperties=False),
                errors={**NO_RULE, **CONFLICT},
            ),
            "delete": op(
                "Delete a rule (its events stay in the history).",
                "admin",
                {"description": "Deleted."},
                status="204",
                params=[item],
                errors={**NO_RULE, **CONFLICT},
            ),
        },
        "/api/v1/alerts/channels": {
            "get": op(
                "List the notification channels (secrets masked).",
                "read",
                obj({"data": {"type": "array", "items": ref("AlertChannel")}}),
            ),
            "post": op(
                "Create a channel: webhook (url, secret?), slack or discord (url), or email "
                "(host, port, security, username, password, from, to).",
                "admin",
                ref("AlertChannel"),
                status="201",
                body=obj(CHANNEL_FIELDS, "name", "kind", additionalProperties=False),
                errors=CONFLICT,
            ),
        },
        "/api/v1/alerts/channels/{item_id}": {
            "get": op(
                "One channel.", "read", ref("AlertChannel"), params=[item], errors=NO_CHANNEL
            ),
            "patch": op(
                "Change a channel; secrets not given are kept.",
                "admin",
                ref("AlertChannel"),
                params=[item],
                body=obj(CHANNEL_FIELDS, additionalProperties=False),
                errors={**NO_CHANNEL, **CONFLICT},
            ),
            "delete": op(
                "Delete a channel (and take it off the rules).",
                "admin",
                {"description": "Deleted."},
                status="204",
                params=[item],
                errors={**NO_CHANNEL, **CONFLICT},
            ),
        },
        "/api/v1/alerts/channels/{item_id}/test": {
            "post": op(
                "Send a test notification now; says whether it arrived, or why not.",
                "admin",
                obj({"ok": BOOL, "error": nullable(STR)}),
                params=[item],
                errors=NO_CHANNEL,
            )
        },
        "/api/v1/alerts/events": {
            "get": op(
                "The history: firing and resolved events, newest first, with their deliveries.",
                "read",
                obj({"data": {"type": "array", "items": ref("AlertEvent")}}),
                params=[
                    q("rule_id", STR, "Only this rule's events."),
                    q("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}),
                ],
            )
        },
    }
