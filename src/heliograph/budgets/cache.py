"""Budget definitions in memory, so checking a request never waits on the database.

Like the key and prompt caches: each worker loads every budget at start and again every
``key_refresh_interval`` seconds, so a budget made, changed or deleted through the API or
the dashboard takes effect in every worker and replica within that interval.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from heliograph.budgets.rules import Budget
from heliograph.store import budgets as budget_store

log = logging.getLogger(__name__)
LOAD_TIMEOUT_S = 2.0


class BudgetCache:
    def __init__(self, engine: Engine, refresh_interval: float) -> None:
        self.engine = engine
        self.refresh_interval = refresh_interval
        self._by_org: dict[str, tuple[Budget, ...]] = {}

    def load(self) -> None:
        """Blocking reload of every budget (runs in a thread)."""
        by_org: dict[str, list[Budget]] = {}
        for row in budget_store.list_budgets(self.engine):
            try:
                budget = Budget.from_row(row)
            except Exception as exc:  # one bad row must not disable every other budget
                log.warning("budget %s not loaded: %s", row.get("name"), exc)
                continue
            by_org.setdefault(budget.org_id, []).append(budget)
        self._by_org = {org: tuple(items) for org, items in by_org.items()}

    def for_org(self, org_id: str) -> tuple[Budget, ...]:
        return self._by_org.get(org_id, ())

    def get(self, org_id: str, budget_id: str) -> Budget | None:
        return next((b for b in self.for_org(org_id) if b.id == budget_id), None)

    async def reload(self) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self.load), timeout=LOAD_TIMEOUT_S)
        except Exception as exc:  # keep enforcing what we have
            log.warning("could not reload budgets: %s", exc)

    async def run(self) -> None:
        """Reload forever; started by the app's lifespan."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            await self.reload()
