"""The retention part of the OpenAPI document; ``openapi.document`` merges it."""

from __future__ import annotations

from typing import Any

from heliograph.api.openapi import op
from heliograph.api.openapi_schemas import STR, nullable, obj, ref
from heliograph.retention.policy import KINDS, MAX_DAYS

DAYS: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_DAYS}
SETTING: dict[str, Any] = {
    "type": ["integer", "null"],
    "minimum": 0,
    "maximum": MAX_DAYS,
    "description": "Days (1 to 36500); 0: never, whatever the server default; null or "
    "absent: the server default.",
}
KIND_NAMES = {
    "bodies_days": "Request and response bodies (the record stays).",
    "records_days": "Records, with everything keyed by their id; at least bodies_days.",
    "rollups_days": "Hourly and daily rollups behind the dashboards.",
}


def schemas() -> dict[str, Any]:
    limits = {k: {**nullable(DAYS), "description": d} for k, d in KIND_NAMES.items()}
    policy = {
        **limits,
        "sources": obj({k: {"enum": ["default", "organization"]} for k in KINDS}),
        "override": obj({k: nullable({"type": "integer", "minimum": 0}) for k in KINDS}),
        "defaults": obj({k: nullable(DAYS) for k in KINDS}),
        "updated_at": nullable({"type": "string", "format": "date-time"}),
        "updated_by": nullable(STR),
    }
    return {"RetentionPolicy": obj(policy)}


def paths() -> dict[str, Any]:
    body = obj({k: SETTING for k in KINDS}, additionalProperties=False)
    body["required"] = []
    return {
        "/api/v1/retention": {
            "get": op(
                "The retention policy in force for the key's organization: days per kind "
                "(null: kept for ever), where each comes from (server default or the "
                "organization's override), the override itself and the server defaults.",
                "read",
                ref("RetentionPolicy"),
            ),
            "put": op(
                "Replace the organization's override. The job process applies it on its next "
                "pass (HELIOGRAPH_RETENTION_INTERVAL_S), deleting in small batches.",
                "admin",
                ref("RetentionPolicy"),
                body=body,
            ),
        }
    }
