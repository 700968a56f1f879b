"""Replying, spooling and forwarding: what the plain path and the feature path both do.

The gateway (``proxy.py``) and the policies (``policies.py``) each receive one ``Relay``;
neither reaches into the other. Forwarding streams the upstream's bytes to the client as they
arrive and keeps a bounded copy for the spool (:class:`~heliograph.gateway.streaming.ResponseTap`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson

from heliograph.capture.frames import EndFrame, StartFrame
from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter
from heliograph.config import Settings
from heliograph.gateway.errors import error_body, stream_error_event
from heliograph.gateway.idle import UpstreamWait, UpstreamWaits
from heliograph.gateway.streaming import ClientWatch, ResponseTap
from heliograph.gateway.upstreams import DROP_RESPONSE
from heliograph.providers.openai_wire import UsageChunkStripper

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Completion = Callable[[int, str, bytes], Awaitable[None]]
IdHeaders = list[tuple[bytes, bytes]]
CLIENT_CLOSED = 499  # nginx's status for "the client closed the request before the answer"
STREAM_ENDS = (b"data: [DONE]", b"event: message_stop", b'"done":true', b'"done": true')


def ends_stream(chunk: bytes) -> bool:
    """Whether a read carries a protocol's end-of-stream marker (OpenAI, Anthropic, Ollama)."""
    return any(marker in chunk for marker in STREAM_ENDS)


def ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


async def pass_on(send: Send, stripper: UsageChunkStripper | None, chunk: bytes) -> None:
    """Send one piece of a response body on, less the usage chunk the client did not ask for."""
    out = stripper.feed(chunk) if stripper is not None else chunk
    if out:
        await send({"type": "http.response.body", "body": out, "more_body": True})


async def pass_rest(send: Send, stripper: UsageChunkStripper | None) -> None:
    """Send what the usage stripper still holds once the body is over."""
    if stripper is not None:
        tail = stripper.flush()
        if tail:
            await send({"type": "http.response.body", "body": tail, "more_body": True})


class Relay:
    """Talks to the client, the upstream and the spool for one app."""

    def __init__(
        self, settings: Settings, spool: SpoolWriter, session: aiohttp.ClientSession
    ) -> None:
        self.spool_writer = spool
        self.session = session
        self.keep_bytes = settings.max_stored_body_bytes  # of a response, for the spool
        # No sock_read: the upstream's silence is timed by one sweep for all (``idle.py``).
        self.timeout = aiohttp.ClientTimeout(total=None, connect=settings.upstream_connect_timeout)
        self.waits = UpstreamWaits(settings.upstream_timeout)

    # -- the spool ------------------------------------------------------------------------
    def _append(self, kind: bytes, frame: StartFrame | EndFrame, body: bytes) -> None:
        try:
            self.spool_writer.append(kind, orjson.dumps(frame), body)
        except OSError as exc:  # disk full or gone: keep serving, shout in the log
            log.error("spool write failed, record %s lost: %s", frame.get("id"), exc)

    def start(self, frame: StartFrame, body: bytes) -> None:
        self._append(KIND_START, frame, body)

    def end(self, frame: EndFrame, body: bytes) -> None:
        self._append(KIND_END, frame, body)

    # -- answers of our own -----------------------------------------------------------------
    async def reply_error(
        self,
        send: Send,
        status: int,
        message: str,
        code: str,
        extra: IdHeaders,
        protocol: str = "openai",
    ) -> bytes:
        """An error in the client's protocol's own shape; returns the body sent."""
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

    async def refuse(
        self,
        send: Send,
        end: EndFrame,
        t0: float,
        id_headers: IdHeaders,
        protocol: str,
        status: int,
        message: str,
        code: str,
        state: str = "error",
    ) -> None:
        """Answer an error instead of calling the upstream, and record it."""
        reply = await self.reply_error(send, status, message, code, id_headers, protocol)
        end.update(
            {
                "st": status,
                "state": state,
                "err": message,
                "lat": ms_since(t0),
                "ct": "application/json",
            }
        )
        self.end(end, reply)

    async def refuse_early(
        self,
        send: Send,
        start: StartFrame,
        t0: float,
        id_headers: IdHeaders,
        protocol: str,
        status: int,
        message: str,
        code: str,
    ) -> None:
        """Refuse before the body was read: record the request without its body."""
        self.start(start, b"")
        await self.refuse(
            send, {"id": start["id"]}, t0, id_headers, protocol, status, message, code
        )

    def upload_cancelled(self, start: StartFrame, t0: float, received: int, declared: int) -> None:
        """Record a client that left while still sending its request."""
        self.start(start, b"")
        of = f" of {declared}" if declared >= 0 else ""
        self.end(
            {
                "id": start["id"],
                "st": CLIENT_CLOSED,
                "state": "cancelled",
                "err": f"Client disconnected during the upload ({received}{of} bytes received).",
                "lat": ms_since(t0),
            },
            b"",
        )

    def client_left(self, end: EndFrame, t0: float) -> None:
        """Record a client that left before any answer, unless something was recorded."""
        if "state" not in end:
            end.update(
                {
                    "st": CLIENT_CLOSED,
                    "state": "cancelled",
                    "err": "Client disconnected before the response started.",
                    "lat": ms_since(t0),
                }
            )
            self.end(end, b"")

    # -- the upstream ---------------------------------------------------------------------
    async def open(
        self,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: bytes,
        wait: UpstreamWait,
    ) -> aiohttp.ClientResponse | tuple[int, str, str]:
        """The upstream's response once its headers arrived, or (status, message, code) of
        the gateway error to answer with: 504 on timeout, 502 when unreachable. From here
        ``wait`` times the upstream's silence until its body is read."""
        wait.expect()
        try:
            resp = await self.session.request(
                method,
                url,
                headers=headers,
                data=body if body or method not in ("GET", "HEAD") else None,
                allow_redirects=False,
                timeout=self.timeout,
            )
        except asyncio.CancelledError:
            wait.close()
            task = asyncio.current_task()
            if not wait.absorb() or (task is not None and task.cancelling()):
                raise  # not (only) the idle timeout: the client left, or a shutdown
            return 504, "Upstream did not answer in time.", "upstream_timeout"
        except TimeoutError:
            wait.close()
            return 504, "Upstream did not answer in time.", "upstream_timeout"
        except (aiohttp.ClientError, OSError) as exc:
            wait.close()
            return 502, f"Upstream unreachable: {exc}", "upstream_unreachable"
        wait.expect(resp)
        return resp

    async def forward(
        self,
        watch: ClientWatch,
        wait: UpstreamWait,
        resp: aiohttp.ClientResponse,
        t0: float,
        end: EndFrame,
        id_headers: IdHeaders,
        injected: bool,
        protocol: str,
        on_complete: Completion | None = None,
    ) -> str:
        """Stream or copy the upstream response to the client; returns the final state.

        ``on_complete(status, content_type, body)`` runs before the response ends (the cache
        stores a miss there, so the next identical request is a hit). What is kept for the
        spool is bounded (:class:`ResponseTap`); the client gets every byte.
        """
        status = resp.status
        ctype = resp.headers.get("Content-Type", "")
        headers = [(k, v) for k, v in resp.raw_headers if k.lower() not in DROP_RESPONSE]
        headers.extend(id_headers)
        end.update(
            {
                "st": status,
                "ttfb": ms_since(t0),
                "ct": ctype,
                "rh": [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers],
            }
        )
        is_sse = ctype.startswith("text/event-stream")
        length = resp.content_length
        if length is not None and length <= self.keep_bytes and not is_sse:
            return await self._forward_whole(
                watch.send, resp, headers, id_headers, t0, end, protocol, on_complete
            )
        send = watch.send
        await send({"type": "http.response.start", "status": status, "headers": headers})
        stripper = UsageChunkStripper() if injected and is_sse else None
        tap = ResponseTap(t0, self.keep_bytes)
        state = "ok" if status < 400 else "error"
        error: str | None = None if status < 400 else f"Upstream returned HTTP {status}"
        left = False
        try:
            async for chunk in resp.content.iter_any():
                wait.busy = True  # our own side's time, not the upstream's silence
                tap.add(chunk)
                if on_complete is not None and status < 400 and ends_stream(chunk):
                    # Store before the client sees the end, so its next request is a hit.
                    if tap.tail is None:
                        await on_complete(status, ctype, tap.body())
                    on_complete = None
                await pass_on(send, stripper, chunk)
                wait.busy = False
            wait.busy = True
            await pass_rest(send, stripper)
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
            left = True
            if not (status < 400 and ends_stream(tap.last_bytes())):
                state, error = "cancelled", "Client disconnected before the response finished."
            # else the stream's end was passed on: a client that closes on [DONE] got it all
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
            end.update({"state": state, "err": error, "lat": ms_since(t0)})
            tap.fill(end)
            raw = tap.body()
            self.end(end, raw)
        if not left:
            if on_complete is not None and state == "ok" and tap.tail is None:
                await on_complete(status, ctype, raw)
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return state

    async def _forward_whole(
        self,
        send: Send,
        resp: aiohttp.ClientResponse,
        headers: IdHeaders,
        id_headers: IdHeaders,
        t0: float,
        end: EndFrame,
        protocol: str,
        on_complete: Completion | None = None,
    ) -> str:
        status = resp.status
        try:
            data = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            resp.close()
            msg = f"Upstream connection lost mid-response: {exc!r}"
            reply = await self.reply_error(
                send, 502, msg, "upstream_stream_broken", id_headers, protocol
            )
            end.update(
                {
                    "st": 502,
                    "state": "error",
                    "err": msg,
                    "lat": ms_since(t0),
                    "ct": "application/json",
                }
            )
            self.end(end, reply)
            return "error"
        finally:
            resp.release()
        headers.append((b"content-length", str(len(data)).encode()))
        if on_complete is not None and status < 400:
            await on_complete(status, resp.headers.get("Content-Type", ""), data)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data, "more_body": False})
        lat = ms_since(t0)
        state = "ok" if status < 400 else "error"
        end.update(
            {
                "state": state,
                "err": None if status < 400 else f"Upstream returned HTTP {status}",
                "lat": lat,
                "ch": [(len(data), lat)],
            }
        )
        self.end(end, data)
        return state
