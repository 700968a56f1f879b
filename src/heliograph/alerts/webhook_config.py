"""Webhook endpoints from config.toml (``[[webhooks]]``), synced into the store at start.

They belong to the default (first) organization, are matched by name, and are marked as
coming from config: the API and the dashboard show them but cannot change or delete them, and
an entry removed from the file is removed from the store at the next start.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from heliograph.config import Settings
from heliograph.store import orgs, webhooks

log = logging.getLogger("heliograph.webhooks")


def sync_config_webhooks(engine: Engine, settings: Settings) -> None:
    """Make the default organization's config endpoints those of ``settings.webhooks``."""
    org_id = orgs.first_org(engine)
    if org_id is None:
        return
    webhooks.sync_config(engine, org_id, settings.webhooks)
    if settings.webhooks:
        log.info("webhooks: %d endpoint(s) from config", len(settings.webhooks))
