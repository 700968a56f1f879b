"""State shared by all gateway processes and replicas: Redis when configured, else the store.

Both backends offer the same small interface (cache entries, windowed counters). Every call
is bounded by a short timeout and failures degrade gracefully (a cache miss, an admitted
request) so an unavailable backend never stops traffic.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine

from heliograph.store import shared as shared_store

log = logging.getLogger(__name__)
TIMEOUT_S = 0.5


@dataclass(frozen=True, slots=True)
class CachedResponse:
    slot: int
    status: int
    content_type: str
    body: bytes
    source_id: str


class SharedState(ABC):
    @abstractmethod
    async def cache_get(self, key: str) -> list[CachedResponse]: ...

    @abstractmethod
    async def cache_put(self, key: str, org_id: str, entry: CachedResponse, ttl_s: int) -> None: ...

    @abstractmethod
    async def counter_add(self, key: str, window: int, amount: float, ttl_s: int) -> float: ...

    @abstractmethod
    async def counter_get(self, key: str, windows: list[int]) -> dict[int, float]: ...

    async def close(self) -> None:
        return None


class StoreState(SharedState):
    """The store (SQLite or PostgreSQL) as shared state; calls run in worker threads."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.wait_for(
            asyncio.to_thread(fn, self.engine, *args, **kwargs), TIMEOUT_S * 4
        )

    async def cache_get(self, key: str) -> list[CachedResponse]:
        rows = await self._call(shared_store.cache_entries, key)
        return [
            CachedResponse(
                r["slot"], r["status"], r["content_type"], bytes(r["body"]), r["source_request_id"]
            )
            for r in rows
        ]

    async def cache_put(self, key: str, org_id: str, entry: CachedResponse, ttl_s: int) -> None:
        await self._call(
            shared_store.put_cache_entry,
            key=key,
            slot=entry.slot,
            org_id=org_id,
            status=entry.status,
            content_type=entry.content_type,
            body=entry.body,
            source_request_id=entry.source_id,
            ttl_s=ttl_s,
        )

    async def counter_add(self, key: str, window: int, amount: float, ttl_s: int) -> float:
        result: float = await self._call(shared_store.add_to_counter, key, window, amount, ttl_s)
        return result

    async def counter_get(self, key: str, windows: list[int]) -> dict[int, float]:
        result: dict[int, float] = await self._call(shared_store.counter_values, key, windows)
        return result


class RedisState(SharedState):
    """Redis as shared state, for several replicas."""

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.redis = aioredis.from_url(
            url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
        )

    async def cache_get(self, key: str) -> list[CachedResponse]:
        raw = await self.redis.hgetall(f"hg:cache:{key}")
        out = []
        for slot, item in sorted(raw.items(), key=lambda kv: int(kv[0])):
            value = item if isinstance(item, bytes) else str(item).encode("latin-1")
            size = int.from_bytes(value[:4], "big")
            meta = orjson.loads(value[4 : 4 + size])
            out.append(
                CachedResponse(int(slot), meta["st"], meta["ct"], value[4 + size :], meta["src"])
            )
        return out

    async def cache_put(self, key: str, org_id: str, entry: CachedResponse, ttl_s: int) -> None:
        meta = orjson.dumps({"st": entry.status, "ct": entry.content_type, "src": entry.source_id})
        value = len(meta).to_bytes(4, "big") + meta + entry.body
        name = f"hg:cache:{key}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(name, str(entry.slot), value)
            pipe.expire(name, ttl_s)
            await pipe.execute()

    async def counter_add(self, key: str, window: int, amount: float, ttl_s: int) -> float:
        name = f"hg:rl:{key}:{window}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(name, amount)
            pipe.expire(name, ttl_s)
            total, _ = await pipe.execute()
        return float(total)

    async def counter_get(self, key: str, windows: list[int]) -> dict[int, float]:
        values = await self.redis.mget([f"hg:rl:{key}:{w}" for w in windows])
        return {w: float(v) for w, v in zip(windows, values, strict=True) if v is not None}

    async def close(self) -> None:
        await self.redis.aclose()
