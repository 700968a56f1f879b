"""Requests Heliograph makes through its own gateway (a replay from the dashboard).

They take the same path as a client's request, recorded and all; only the key lookup is
skipped, since the caller is already authenticated.
"""

from __future__ import annotations

import asyncio

from heliograph.auth.keys import KeyInfo
from heliograph.gateway.proxy import Gateway
from heliograph.gateway.relay import Message, Scope
from heliograph.gateway.routing import Route


class InternalExchange:
    """Runs one request through the gateway from inside Heliograph and collects the answer."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.done = asyncio.Event()

    async def run(
        self,
        info: KeyInfo,
        upstream: str,
        rest: str,
        body: bytes,
        headers: list[tuple[str, str]],
        query: str = "",
    ) -> InternalExchange:
        scope: Scope = {
            "type": "http",
            "method": "POST",
            "path": f"/{upstream}{rest}",
            "query_string": query.encode("latin-1", "replace"),
            "headers": [(k.lower().encode("latin-1"), v.encode()) for k, v in headers],
        }
        sent = False

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self.done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message["headers"]
                }
            elif message["type"] == "http.response.body":
                self.body += message.get("body", b"")
                if not message.get("more_body", False):
                    self.done.set()

        route = Route(upstream, None, rest)
        try:
            await self.gateway.handle(scope, receive, send, route, internal=info)
        finally:
            self.done.set()
        return self
