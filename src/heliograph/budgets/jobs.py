"""Budget upkeep in the job process: spend buckets no window can reach any more are dropped.

A rolling ``1h`` budget settles into a new bucket every minute, so without this the store
would keep every minute of every budget for ever. The longest window is 31 days (``month``
and ``744h``); buckets older than 32 days go, once an hour. Redis drops them in the
reservation script.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from heliograph.store import budgets as budget_store

KEEP_S = 32 * 86400
EVERY_S = 3600.0


async def prune_tick(context: Any) -> None:
    """``context`` is a ``jobs.runner.JobContext``."""
    before = int(time.time()) - KEEP_S
    await asyncio.to_thread(budget_store.prune_spend, context.engine, before)


def register(registry: Any) -> None:
    registry.run_periodic("budgets-prune", prune_tick, EVERY_S)
