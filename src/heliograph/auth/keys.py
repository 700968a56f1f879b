"""Heliograph API keys: generation, hashing, scopes and the in-memory cache the gateway uses.

Keys look like ``hg_<32 url-safe chars>``; the fixed prefix lets the router recognise a key
in a URL path. Only a SHA-256 of the key is stored: keys are long random strings, so a slow
password hash would add cost on every cache miss and no security.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine

from heliograph.store import keys as key_store

log = logging.getLogger(__name__)

KEY_PREFIX = "hg_"
SCOPES = ("write", "read", "admin")
# What each scope may do: a write key sends traffic and feedback and can never read.
GRANTS: dict[str, frozenset[str]] = {
    "write": frozenset({"write"}),
    "read": frozenset({"read"}),
    "admin": frozenset({"write", "read", "admin"}),
}


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The part of a key that is safe to show in lists (enough to tell keys apart)."""
    return key[: len(KEY_PREFIX) + 6]


def looks_like_key(text: str) -> bool:
    return text.startswith(KEY_PREFIX) and 20 <= len(text) <= 128


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: str
    org_id: str
    scope: str

    def allows(self, action: str) -> bool:
        return action in GRANTS.get(self.scope, frozenset())


def create_key(engine: Engine, *, org_id: str, name: str, scope: str) -> tuple[str, str]:
    """Create a key; returns (key_id, key). The key is not recoverable afterwards."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    key = generate_key()
    key_id = key_store.insert_key(
        engine,
        org_id=org_id,
        name=name,
        scope=scope,
        prefix=display_prefix(key),
        key_hash=hash_key(key),
    )
    return key_id, key


class KeyCache:
    """Key hash -> KeyInfo, held in memory so authentication never waits on the database.

    A background task reloads the whole table every few seconds; an unknown key waits for a
    reload that starts after it arrived (an early one, at most every 250 ms), so a key
    created a moment ago, on this replica or another, works at once. Unknown keys arriving
    together share that reload: a flood of bad keys costs four table reads a second.
    """

    MISS_RELOAD_INTERVAL = 0.25

    def __init__(self, engine: Engine, refresh_interval: float) -> None:
        self.engine = engine
        self.refresh_interval = refresh_interval
        self._keys: dict[str, KeyInfo] = {}
        self._last_load = 0.0
        self._load_started = 0.0
        self._reload_lock = asyncio.Lock()

    def load(self) -> None:
        """Blocking reload (runs in a thread)."""
        self._load_started = time.monotonic()
        rows = key_store.active_keys(self.engine)
        self._keys = {h: KeyInfo(kid, org, scope) for h, kid, org, scope in rows}
        self._last_load = time.monotonic()

    def add(self, key: str, info: KeyInfo) -> None:
        self._keys = {**self._keys, hash_key(key): info}

    def get(self, key: str) -> KeyInfo | None:
        return self._keys.get(hash_key(key))

    async def lookup(self, key: str) -> KeyInfo | None:
        info = self._keys.get(hash_key(key))
        if info is not None or not looks_like_key(key):
            return info
        arrived = time.monotonic()
        async with self._reload_lock:
            if self._load_started < arrived:  # no reload has begun since this one arrived
                wait = self.MISS_RELOAD_INTERVAL - (time.monotonic() - self._last_load)
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._reload()
            info = self._keys.get(hash_key(key))
        return info

    async def _reload(self) -> None:
        try:
            await asyncio.wait_for(asyncio.to_thread(self.load), timeout=2.0)
        except Exception as exc:  # the store may be down; keep serving with what we have
            log.warning("could not reload API keys: %s", exc)
            self._last_load = time.monotonic()

    async def run(self) -> None:
        """Reload forever; started by the app's lifespan."""
        while True:
            await asyncio.sleep(self.refresh_interval)
            await self._reload()
