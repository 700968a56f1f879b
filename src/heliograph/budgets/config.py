"""Budgets from ``config.toml`` (or HELIOGRAPH_BUDGETS), put in step with the store at start.

They belong to the first (default) organization and are marked as coming from the config, so
the API and dashboard show them but send changes back here; budgets made through the API or
dashboard are never touched.
"""

from __future__ import annotations

from sqlalchemy import Engine

from heliograph.budgets.rules import check_budget
from heliograph.config import Settings
from heliograph.store import budgets as budget_store
from heliograph.store import orgs


def sync_budgets(engine: Engine, settings: Settings) -> None:
    org_id = orgs.first_org(engine)
    if org_id is None:
        return
    defs = [check_budget(b, settings.budget_timezone) for b in settings.budgets]
    budget_store.sync_config(engine, org_id, defs)
