"""A policy as the API and the dashboard show it: one shape for both (and the OpenAPI schema).

``bodies_days``, ``records_days`` and ``rollups_days`` are what applies now (null: kept for
ever); ``override`` is what the organization set (null: the server default; 0: never);
``defaults`` are the server's settings.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from heliograph.config import Settings
from heliograph.retention.policy import KINDS, defaults, effective


def policy_view(settings: Settings, override: dict[str, Any] | None) -> dict[str, Any]:
    policy = effective(settings, override)
    base = defaults(settings)
    updated = (override or {}).get("updated_at")
    return {
        **policy.as_dict(),
        "override": {kind: (override or {}).get(kind) for kind in KINDS},
        "defaults": {kind: base.days(kind) for kind in KINDS},
        "updated_at": None
        if updated is None
        else dt.datetime.fromtimestamp(updated / 1000, dt.UTC).isoformat(),
        "updated_by": (override or {}).get("updated_by"),
    }
