"""A budget's standing now: spent, reserved, remaining, when it resets, thresholds crossed.

One function for the API and the dashboard page, so both show the same numbers.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from heliograph.budgets.ledger import Ledger
from heliograph.budgets.rules import NUSD_PER_USD, Budget
from heliograph.budgets.windows import span


def _amount(budget: Budget, value: int) -> float | int:
    return value / NUSD_PER_USD if budget.unit == "usd" else value


async def standing(budget: Budget, ledger: Ledger, now: float | None = None) -> dict[str, Any]:
    """The budget in the API's shape with its usage; usage fields None if the ledger is down."""
    now = time.time() if now is None else now
    window = span(budget, now)
    out = budget.as_dict()
    out["resets_at"] = datetime.fromtimestamp(window.resets_at, UTC).isoformat()
    out["window_start"] = datetime.fromtimestamp(
        window.first if budget.rolling_s is None else now - budget.rolling_s, UTC
    ).isoformat()
    try:
        spent, held = await ledger.usage(budget.id, window)
    except Exception:
        out.update(spent=None, reserved=None, remaining=None, used_percent=None, crossed=[])
        return out
    used = spent + held
    percent = round(100 * spent / budget.limit, 1) if budget.limit else (100.0 if spent else 0.0)
    out.update(
        spent=_amount(budget, spent),
        reserved=_amount(budget, held),
        remaining=_amount(budget, max(budget.limit - used, 0)),
        used_percent=percent,
        crossed=[t for t in budget.thresholds if percent >= t],
    )
    return out
