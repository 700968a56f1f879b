"""Prompt versions in memory, so a request naming a prompt never waits on the database.

Mirrors the key cache: each worker loads every labelled version at start and reloads the lot
every ``key_refresh_interval`` seconds, so a label moved through the API takes effect in every
worker process and replica within that interval. Lookups by label, and by version number for
a version some label points at, are dictionary reads.

A version asked for by number that no label points at is loaded on demand in a worker thread
(bounded by a timeout, never on the event loop) and kept in a small LRU: versions are
immutable, but a prompt can be deleted, and made again under its name with other versions
numbered from 1. So each kept version remembers its prompt's id, and after a reload one that
is no longer its name's prompt is dropped (a deleted prompt stops rendering within the
refresh interval, like a moved label). A number that does not exist is remembered for one
refresh interval, so a client repeating a bad number cannot turn every request into a query.

The same reload keeps, per organization, the prompts whose ``production`` label points at a
version: the virtual models (``prompt:<name>``) a models list shows, read from memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any, NamedTuple

from sqlalchemy import Engine

from heliograph.prompts.versions import Version
from heliograph.store import prompts as prompt_store

log = logging.getLogger(__name__)
LabelKey = tuple[str, str, str]  # org_id, prompt name, label
VersionKey = tuple[str, str, int]  # org_id, prompt name, version number
LOAD_TIMEOUT_S = 2.0
LISTED_LABEL = "production"


class Listed(NamedTuple):
    """A prompt shown as a virtual model: its production version and when that was saved."""

    version: Version
    created_ms: int


class PromptCache:
    """(org, name, label) and (org, name, version) -> Version, held in memory."""

    EXTRA_VERSIONS = 256  # unlabelled versions kept, least recently used dropped first

    def __init__(self, engine: Engine, refresh_interval: float) -> None:
        self.engine = engine
        self.refresh_interval = refresh_interval
        self._labels: dict[LabelKey, Version] = {}
        self._versions: dict[VersionKey, Version] = {}
        # Versions loaded by number: (prompt id, the reload it was loaded after, version).
        self._extra: OrderedDict[VersionKey, tuple[str, int, Version]] = OrderedDict()
        self._missing_at: dict[VersionKey, float] = {}
        self._listed: dict[str, tuple[Listed, ...]] = {}
        self._ids: dict[tuple[str, str], str] = {}  # (org_id, name) -> prompt id
        self._reloads = 0

    def load(self) -> None:
        """Blocking reload of every labelled version (runs in a thread)."""
        labels: dict[LabelKey, Version] = {}
        versions: dict[VersionKey, Version] = {}
        listed: dict[str, list[Listed]] = {}
        ids = prompt_store.prompt_ids(self.engine)
        for row in prompt_store.labelled_versions(self.engine):
            org, name = row["org_id"], row["name"]
            key = (org, name, row["version"])
            version = versions.get(key)
            if version is None:
                try:
                    version = versions[key] = Version.from_row(row)
                except Exception as exc:  # one bad row must not hide every other prompt
                    log.warning("prompt %s version %s not loaded: %s", name, key[2], exc)
                    continue
            labels[(org, name, row["label"])] = version
            if row["label"] == LISTED_LABEL:  # rows come sorted by name
                listed.setdefault(org, []).append(Listed(version, int(row["created_at"] or 0)))
        # Swapped whole: readers see one state.
        self._labels, self._versions = labels, versions
        self._listed = {org: tuple(items) for org, items in listed.items()}
        self._missing_at = {}
        self._ids = ids
        self._reloads += 1

    def by_label(self, org_id: str, name: str, label: str) -> Version | None:
        return self._labels.get((org_id, name, label))

    def listed(self, org_id: str) -> tuple[Listed, ...]:
        """The organization's prompts with a production version, by name."""
        return self._listed.get(org_id, ())

    async def by_version(self, org_id: str, name: str, number: int) -> Version | None:
        """A version by number: from memory when labelled or seen, else loaded once."""
        key = (org_id, name, number)
        found = self._versions.get(key)
        if found is not None:
            return found
        kept = self._extra.get(key)
        if kept is not None:
            prompt_id, loaded_after, version = kept
            if loaded_after == self._reloads or self._ids.get((org_id, name)) == prompt_id:
                self._extra.move_to_end(key)
                return version
            del self._extra[key]  # its prompt was deleted (and perhaps made again)
        missed = self._missing_at.get(key)
        if missed is not None and time.monotonic() - missed < self.refresh_interval:
            return None
        reloads = self._reloads
        try:
            loaded = await asyncio.wait_for(
                asyncio.to_thread(self._load_version, org_id, name, number), LOAD_TIMEOUT_S
            )
        except Exception as exc:  # the store may be down: the prompt is unavailable, not a crash
            log.warning("could not load prompt %s version %s: %s", name, number, exc)
            return None
        if loaded is None:
            self._missing_at[key] = time.monotonic()
            return None
        prompt_id, version = loaded
        self._extra[key] = (prompt_id, reloads, version)
        while len(self._extra) > self.EXTRA_VERSIONS:
            self._extra.popitem(last=False)
        return version

    def _load_version(self, org_id: str, name: str, number: int) -> tuple[str, Version] | None:
        row: dict[str, Any] | None = prompt_store.get_version(self.engine, org_id, name, number)
        if row is None:
            return None
        return str(row["prompt_id"]), Version.from_row({**row, "name": name})

    async def _reload(self) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self.load), timeout=LOAD_TIMEOUT_S)
        except Exception as exc:  # keep serving what we have
            log.warning("could not reload prompts: %s", exc)

    async def run(self) -> None:
        """Reload forever; started by the app's lifespan."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            await self._reload()
