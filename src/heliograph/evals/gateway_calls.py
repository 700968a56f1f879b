"""How the job process calls models: through this server's own gateway, over HTTP.

Every experiment cell and judge call is an ordinary gateway request, so it is recorded,
priced, retried and rate-limited like any other: it goes to the server's listen address
with an internal write key of the organization (``experiments (system)``, created on demand
by the job process and stored hashed like any key; the key itself lives only in this
process's memory), ``Helicone-Request-Id`` set to the id chosen beforehand, the gateway's
retry headers (429 and ``Retry-After`` honoured by its own retry machinery) and properties
naming the experiment, variant and item (and ``judge=1`` for judge calls), so experiment
spending shows in cost breakdowns.

What a call did is read back from the STORED record (``RecordWaiter``), not from the HTTP
answer: the record has the cost and tokens the writer computed, and after a crash it is the
only trace of a call. The waiter polls the store for every awaited id in one query, so many
cells waiting cost one query per poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import Engine

from heliograph.auth.keys import create_key
from heliograph.config import Settings
from heliograph.store import dataset_sources, system_keys

SYSTEM_KEY_NAME = "experiments (system)"
IDLE_KEY_MS = 24 * 3600 * 1000  # another job process's key unused this long is revoked
RETRY_HEADERS = {
    "Helicone-Retry-Enabled": "true",
    "Helicone-Retry-Num": "3",
    "Helicone-Retry-Min-Timeout": "1000",
    "Helicone-Retry-Max-Timeout": "20000",
}
CONNECT_PATIENCE_S = 60.0
KEY_PATIENCE_S = 10.0  # a new key reaches every worker's key cache within its refresh
POLL_S = 0.05


def gateway_url(settings: Settings) -> str:
    """This server's own listen address (never the public URL: that may be a proxy)."""
    host = settings.host
    if host in ("0.0.0.0", "", "*"):  # noqa: S104
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def chat_path(settings: Settings, upstream: str, key: str) -> str:
    """The gateway path of an OpenAI-style chat call to ``upstream`` (Anthropic and Ollama
    upstreams serve it at /v1/chat/completions)."""
    config = settings.resolved_upstreams()[upstream]
    if upstream == "openai":
        return f"/v1/{key}/chat/completions"
    if config.protocol in ("anthropic", "ollama"):
        return f"/{upstream}/{key}/v1/chat/completions"
    return f"/{upstream}/{key}/chat/completions"


class SystemKeys:
    """One internal write key per organization, made on first use by this process (keys
    of earlier job processes idle for a day are revoked then: nobody holds them any more)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.keys: dict[str, str] = {}
        self.lock = asyncio.Lock()

    async def key(self, org_id: str) -> str:
        async with self.lock:
            if org_id not in self.keys:
                await asyncio.to_thread(
                    system_keys.revoke_idle, self.engine, org_id, SYSTEM_KEY_NAME, IDLE_KEY_MS
                )
                _id, key = await asyncio.to_thread(
                    create_key, self.engine, org_id=org_id, name=SYSTEM_KEY_NAME, scope="write"
                )
                self.keys[org_id] = key
            return self.keys[org_id]


@dataclass
class Answer:
    status: int  # 0: no HTTP answer (the connection failed mid-request)
    body: bytes


class GatewayClient:
    """Posts chat bodies to the gateway; connection refusals (the server starting) retried."""

    def __init__(self, settings: Settings, limit: int) -> None:
        self.settings = settings
        self.base = gateway_url(settings)
        timeout = aiohttp.ClientTimeout(total=settings.upstream_timeout * 4 + 60)
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max(limit, 1)), timeout=timeout
        )

    async def post(
        self, path: str, body: Mapping[str, Any], request_id: str, properties: Mapping[str, str]
    ) -> Answer:
        headers = {"Helicone-Request-Id": request_id, **RETRY_HEADERS}
        for name, value in properties.items():
            headers[f"Helicone-Property-{name}"] = value
        start = time.monotonic()
        deadline = start + CONNECT_PATIENCE_S
        delay = 0.2
        while True:
            try:
                async with self.session.post(self.base + path, json=body, headers=headers) as r:
                    answer = Answer(r.status, await r.read())
                # 401: the key is newer than this worker's key cache (a refused key is never
                # recorded, so the same request id is sent again)
                if answer.status != 401 or time.monotonic() - start > KEY_PATIENCE_S:
                    return answer
                await asyncio.sleep(0.3)
            except aiohttp.ClientConnectorError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except (aiohttp.ClientError, TimeoutError):
                return Answer(0, b"")

    async def close(self) -> None:
        await self.session.close()


class RecordWaiter:
    """Awaits stored records by id; one store query per poll for every id awaited."""

    def __init__(self, engine: Engine, org_id: str) -> None:
        self.engine = engine
        self.org_id = org_id
        self.waiting: dict[str, list[asyncio.Future[dict[str, Any] | None]]] = {}
        self.task: asyncio.Task[None] | None = None

    async def get(self, request_id: str, wait_s: float) -> dict[str, Any] | None:
        """The record (with bodies), or None if it was not stored within ``wait_s`` s."""
        future: asyncio.Future[dict[str, Any] | None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(request_id, []).append(future)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._poll())
        try:
            return await asyncio.wait_for(asyncio.shield(future), wait_s)
        except TimeoutError:
            return None
        finally:
            futures = self.waiting.get(request_id, [])
            if future in futures:
                futures.remove(future)
                if not futures:
                    self.waiting.pop(request_id, None)

    async def _poll(self) -> None:
        while self.waiting:
            ids = list(self.waiting)
            try:
                found = await asyncio.to_thread(self._read, ids)
            except Exception:  # the store may be busy; try again at the next poll
                found = []
            for record in found:
                for future in self.waiting.pop(record["id"], []):
                    if not future.done():
                        future.set_result(record)
            await asyncio.sleep(POLL_S)

    def _read(self, ids: list[str]) -> list[dict[str, Any]]:
        return list(dataset_sources.records_with_bodies(self.engine, self.org_id, ids))

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
