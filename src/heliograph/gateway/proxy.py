"""The hot path: authenticate, forward to the upstream, stream back, spool a start and an end.

Every microsecond here is paid by every request, so this module parses nothing it can leave
to the writer: it forwards bytes as they arrive, notes timestamps, and appends two frames to
the spool. The one exception is the include_usage injection for OpenAI streams, which has to
change the request before it leaves.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson

from heliograph.auth.keys import KeyCache, KeyInfo, looks_like_key
from heliograph.capture.ids import new_record_id
from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter
from heliograph.config import Settings, UpstreamConfig
from heliograph.gateway.errors import error_body, stream_error_event
from heliograph.gateway.features import FEATURE_HEADERS, redact_fallbacks
from heliograph.gateway.policies import Exchange, Policies
from heliograph.gateway.redact import REDACTED, HeaderRedactor, redact_path, redact_query
from heliograph.gateway.routing import Route, protocol_for, upstream_path
from heliograph.gateway.streaming import ClientWatch, ResponseTap, Watches
from heliograph.gateway.upstreams import DROP_RESPONSE, HOP_BY_HOP, Upstream
from heliograph.providers.openai_wire import UsageChunkStripper, inject_stream_usage

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Completion = Callable[[int, str, bytes], Awaitable[None]]
CLIENT_CLOSED = 499  # nginx's status for "the client closed the request before the answer"


def _valid_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


class Gateway:
    """Forwards requests to named upstreams; one instance per app."""

    def __init__(
        self,
        settings: Settings,
        keys: KeyCache,
        spool: SpoolWriter,
        session: aiohttp.ClientSession,
        upstreams: dict[str, UpstreamConfig],
    ) -> None:
        self.settings = settings
        self.keys = keys
        self.spool = spool
        self.session = session
        self.upstreams = {name: Upstream(name, cfg) for name, cfg in upstreams.items()}
        self.policies: Policies | None = None  # set by the app once shared state exists
        self.max_body = settings.max_body_bytes
        self.keep_bytes = settings.max_stored_body_bytes  # of a response, for the spool
        self.redactor = HeaderRedactor()
        self.watches = Watches()
        self.inject_usage = settings.inject_stream_usage
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            connect=settings.upstream_connect_timeout,
            sock_read=settings.upstream_timeout,
        )

    async def _reply_error(
        self,
        send: Send,
        status: int,
        message: str,
        code: str,
        extra: list[tuple[bytes, bytes]],
        protocol: str = "openai",
    ) -> bytes:
        body = error_body(message, code, protocol)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return body

    def _spool(self, kind: bytes, header: dict[str, Any], body: bytes) -> None:
        try:
            self.spool.append(kind, orjson.dumps(header), body)
        except OSError as exc:  # disk full or gone: keep serving, shout in the log
            log.error("spool write failed, record %s lost: %s", header.get("id"), exc)

    async def handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        route: Route,
        internal: KeyInfo | None = None,
    ) -> None:
        """Forward one request; ``internal`` is the identity of a call Heliograph itself makes
        (a replay from the dashboard), which skips key lookup but nothing else."""
        t0 = time.perf_counter()
        upstream = self.upstreams[route.upstream]
        if upstream.doubled and route.rest.startswith("/openai/"):
            route = Route(route.upstream, route.key, route.rest[len("/openai") :])
        protocol = protocol_for(upstream.protocol, route.rest)
        wall = time.time()
        forward: list[tuple[str, str]] = []
        saved: list[tuple[str, str]] = []
        key = route.key
        request_id: str | None = None
        has_auth = False
        declared_length = -1
        found: dict[str, str] | None = None
        cache_control: str | None = None
        redact = self.redactor.value
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1")  # ASGI header names are lower case
            try:  # clients send UTF-8 (a user's name, say); forward the same bytes
                value = raw_value.decode()
            except UnicodeDecodeError:
                value = raw_value.decode("latin-1")
            if name.startswith(("helicone-", "heliograph-")):
                short = name[9:] if name[8] == "-" else name[11:]
                if short == "auth":
                    if key is None:
                        key = value[7:].strip() if value[:7].lower() == "bearer " else value
                    saved.append((name, REDACTED))
                    continue
                if short == "request-id":
                    request_id = _valid_uuid(value)
                elif short in FEATURE_HEADERS:
                    if found is None:
                        found = {}
                    found[short] = value
                    if short == "fallbacks":
                        value = redact_fallbacks(value)
                saved.append((name, redact(name, value)))
                continue
            if name == "cache-control":
                cache_control = value
            if name in HOP_BY_HOP:
                if name == "content-length" and value.isdigit():
                    declared_length = int(value)
                if name != "host":
                    saved.append((name, redact(name, value)))
                continue
            if name == "authorization":
                if value[:7].lower() == "bearer " and looks_like_key(value[7:].strip()):
                    if key is None:
                        key = value[7:].strip()
                    saved.append((name, REDACTED))
                    continue
                has_auth = True
            elif name in ("x-api-key", "api-key"):
                has_auth = True
            saved.append((name, redact(name, value)))
            forward.append((name, value))

        info = internal or (self.keys.get(key) if key else None)
        if info is None and key:
            info = await self.keys.lookup(key)
        rid = request_id or new_record_id()
        id_headers = [(b"heliograph-id", rid.encode()), (b"helicone-id", rid.encode())]
        if info is None:
            reason = (
                "Invalid Heliograph key."
                if key
                else "Missing Heliograph key: put it in the path (/v1/<key>/...) "
                "or send 'Heliograph-Auth: Bearer <key>'."
            )
            await self._reply_error(
                send, 401, reason, "invalid_heliograph_key", id_headers, protocol
            )
            return
        if not info.allows("write"):
            await self._reply_error(
                send,
                403,
                "This key cannot send traffic (it is not a write key).",
                "insufficient_scope",
                id_headers,
                protocol,
            )
            return

        method: str = scope["method"]
        query = scope.get("query_string", b"").decode("latin-1")
        rest = upstream_path(route.rest)
        start: dict[str, Any] = {
            "id": rid,
            "ts": wall,
            "org": info.org_id,
            "key": info.id or None,
            "up": route.upstream,
            "pr": protocol,
            "pv": upstream.provider,
            "m": method,
            "p": redact_path(route.rest if rest is None else rest),
            "q": redact_query(query),
            "h": saved,
        }
        if rest is None:
            msg = "The request path climbs above the upstream's base URL ('..'); refused."
            await self._refuse_early(send, start, t0, id_headers, protocol, 400, msg, "bad_path")
            return
        if declared_length > self.max_body:
            msg = f"Request body larger than {self.max_body} bytes."
            await self._refuse_early(
                send, start, t0, id_headers, protocol, 413, msg, "request_too_large"
            )
            return
        body = b""
        parts: list[bytes] | None = None
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._upload_cancelled(start, t0, size, declared_length)
                return
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body:
                    msg = f"Request body larger than {self.max_body} bytes."
                    await self._refuse_early(
                        send, start, t0, id_headers, protocol, 413, msg, "request_too_large"
                    )
                    return
                if not body:
                    body = chunk
                elif parts is None:
                    parts = [body, chunk]
                else:
                    parts.append(chunk)
            more = message.get("more_body", False)
        if parts is not None:
            body = b"".join(parts)  # linear, however many chunks the upload came in

        self._spool(KIND_START, start, body)

        injected = False
        send_body = body
        if self.inject_usage and method == "POST" and protocol == "openai":
            new_body = inject_stream_usage(rest, body)
            if new_body is not None:
                send_body = new_body
                injected = True
        forward.append(("accept-encoding", "identity"))
        end: dict[str, Any] = {"id": rid, "inj": injected}
        watch = ClientWatch(self.watches, receive, send)
        try:
            if found is not None and self.policies is not None:
                await self.policies.run(
                    Exchange(
                        watch,
                        method,
                        rest,
                        query,
                        upstream,
                        protocol,
                        info.org_id,
                        t0,
                        body,
                        send_body,
                        injected,
                        forward,
                        has_auth,
                        id_headers,
                        end,
                        found,
                        cache_control,
                        saved,
                    )
                )
                return
            if not has_auth and upstream.auth is not None:
                forward.append(upstream.auth)  # the server's key, to its own upstream only
            url = upstream.url + rest
            if query:
                url = url + "?" + query
            resp = await self.open_upstream(method, url, forward, send_body)
            if isinstance(resp, aiohttp.ClientResponse):
                await self._forward_response(watch, resp, t0, end, id_headers, injected, protocol)
                return
            status, msg, code = resp
            reply = await self._reply_error(watch.send, status, msg, code, id_headers, protocol)
            end.update(st=status, state="error", err=msg, lat=_ms(t0), ct="application/json")
            self._spool(KIND_END, end, reply)
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            if "state" not in end:  # not recorded yet: the client left before any answer
                end.update(
                    st=CLIENT_CLOSED,
                    state="cancelled",
                    err="Client disconnected before the response started.",
                    lat=_ms(t0),
                )
                self._spool(KIND_END, end, b"")
        finally:
            watch.close()

    async def open_upstream(
        self, method: str, url: str, headers: list[tuple[str, str]], body: bytes
    ) -> aiohttp.ClientResponse | tuple[int, str, str]:
        """The upstream's response once its headers arrived, or (status, message, code) of
        the gateway error to answer with: 504 on timeout, 502 when unreachable."""
        try:
            return await self.session.request(
                method,
                url,
                headers=headers,
                data=body if body or method not in ("GET", "HEAD") else None,
                allow_redirects=False,
                timeout=self.timeout,
            )
        except TimeoutError:
            return 504, "Upstream did not answer in time.", "upstream_timeout"
        except (aiohttp.ClientError, OSError) as exc:
            return 502, f"Upstream unreachable: {exc}", "upstream_unreachable"

    async def _refuse_early(
        self,
        send: Send,
        start: dict[str, Any],
        t0: float,
        id_headers: list[tuple[bytes, bytes]],
        protocol: str,
        status: int,
        msg: str,
        code: str,
    ) -> None:
        """Answer an error before the upstream is called, and record it (without the body)."""
        self._spool(KIND_START, start, b"")
        reply = await self._reply_error(send, status, msg, code, id_headers, protocol)
        end = {"id": start["id"], "st": status, "state": "error", "err": msg, "lat": _ms(t0)}
        self._spool(KIND_END, end, reply)

    def _upload_cancelled(
        self, start: dict[str, Any], t0: float, received: int, declared: int
    ) -> None:
        """Record a client that left while still sending its request."""
        self._spool(KIND_START, start, b"")
        of = f" of {declared}" if declared >= 0 else ""
        end = {
            "id": start["id"],
            "st": CLIENT_CLOSED,
            "state": "cancelled",
            "err": f"Client disconnected during the upload ({received}{of} bytes received).",
            "lat": _ms(t0),
        }
        self._spool(KIND_END, end, b"")

    async def _forward_response(
        self,
        watch: ClientWatch,
        resp: aiohttp.ClientResponse,
        t0: float,
        end: dict[str, Any],
        id_headers: list[tuple[bytes, bytes]],
        injected: bool,
        protocol: str,
        on_complete: Completion | None = None,
    ) -> tuple[str, bytes]:
        """Stream or copy the upstream response to the client; returns (state, kept body).

        ``on_complete(status, content_type, body)`` runs before the response ends (the cache
        stores a miss there, so the next identical request is a hit). What is kept for the
        spool is bounded (:class:`ResponseTap`); the client gets every byte.
        """
        status = resp.status
        ttfb = _ms(t0)
        ctype = resp.headers.get("Content-Type", "")
        headers = [(k, v) for k, v in resp.raw_headers if k.lower() not in DROP_RESPONSE]
        headers.extend(id_headers)
        end.update(
            st=status,
            ttfb=ttfb,
            ct=ctype,
            rh=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
        )
        is_sse = ctype.startswith("text/event-stream")
        length = resp.content_length
        if length is not None and length <= self.keep_bytes and not is_sse:
            return await self._forward_whole(
                watch.send, resp, status, headers, t0, end, protocol, on_complete
            )
        send = watch.send
        await send({"type": "http.response.start", "status": status, "headers": headers})
        stripper = UsageChunkStripper() if injected and is_sse else None
        tap = ResponseTap(t0, self.keep_bytes)
        state = "ok" if status < 400 else "error"
        error: str | None = None if status < 400 else f"Upstream returned HTTP {status}"
        try:
            async for chunk in resp.content.iter_any():
                tap.add(chunk)
                if on_complete is not None and status < 400 and ends_stream(chunk):
                    # Store before the client sees the end, so its next request is a hit.
                    if not tap.cut and tap.tail is None:
                        await on_complete(status, ctype, tap.body())
                    on_complete = None
                out = stripper.feed(chunk) if stripper is not None else chunk
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
            if stripper is not None:
                tail = stripper.flush()
                if tail:
                    await send({"type": "http.response.body", "body": tail, "more_body": True})
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            state, error = "cancelled", "Client disconnected before the response finished."
            resp.close()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            state = "error"
            error = (
                "Upstream stopped answering mid-response."
                if isinstance(exc, TimeoutError)
                else f"Upstream connection lost mid-response: {exc!r}"
            )
            resp.close()
            notice = stream_error_event(error, ctype, protocol)
            if notice is not None:
                await send({"type": "http.response.body", "body": notice, "more_body": True})
        finally:
            resp.release()
            end.update(state=state, err=error, lat=_ms(t0), **tap.frame_fields())
            raw = tap.body()
            self._spool(KIND_END, end, raw)
        if state != "cancelled":
            if on_complete is not None and state == "ok" and tap.tail is None:
                await on_complete(status, ctype, raw)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return state, raw

    async def _forward_whole(
        self,
        send: Send,
        resp: aiohttp.ClientResponse,
        status: int,
        headers: list[tuple[bytes, bytes]],
        t0: float,
        end: dict[str, Any],
        protocol: str,
        on_complete: Completion | None = None,
    ) -> tuple[str, bytes]:
        try:
            data = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            resp.close()
            msg = f"Upstream connection lost mid-response: {exc!r}"
            reply = await self._reply_error(
                send, 502, msg, "upstream_stream_broken", headers[-2:], protocol
            )
            end.update(st=502, state="error", err=msg, lat=_ms(t0), ct="application/json")
            self._spool(KIND_END, end, reply)
            return "error", b""
        finally:
            resp.release()
        headers.append((b"content-length", str(len(data)).encode()))
        if on_complete is not None and status < 400:
            await on_complete(status, resp.headers.get("Content-Type", ""), data)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data, "more_body": False})
        lat = _ms(t0)
        state = "ok" if status < 400 else "error"
        end.update(
            state=state,
            err=None if status < 400 else f"Upstream returned HTTP {status}",
            lat=lat,
            ch=[(len(data), lat)],
        )
        self._spool(KIND_END, end, data)
        return state, data


STREAM_ENDS = (b"data: [DONE]", b"event: message_stop", b'"done":true', b'"done": true')


def ends_stream(chunk: bytes) -> bool:
    """Whether a read carries a protocol's end-of-stream marker (OpenAI, Anthropic, Ollama)."""
    return any(marker in chunk for marker in STREAM_ENDS)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)
