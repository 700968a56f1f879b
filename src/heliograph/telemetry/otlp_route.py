"""``POST /v1/traces``: OTLP/HTTP trace ingest, answered the OTLP way.

The handler authenticates the write key, reads the body within its limit, undoes gzip
within the same limit, decodes and checks the spans, and appends the accepted ones to this
process's spool as one trace frame: the answer is 200 only once the batch is durable, and
the database is never touched here (the writer makes rows of the frame). Errors carry a
``google.rpc.Status`` in the request's encoding; rejected spans are reported as partial
success. ``/v1/`` is also the OpenAI gateway's prefix: the app hands the OpenAI route's
``/traces`` (key in a header or in the path, as for the gateway) here instead of upstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import MappingProxyType

import orjson
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from heliograph.auth.keys import KeyCache, KeyInfo
from heliograph.capture.frames import TraceFrame
from heliograph.capture.ids import new_record_id
from heliograph.capture.spool import KIND_TRACES, SpoolWriter
from heliograph.config import Settings
from heliograph.gateway.relay import Receive, Scope, Send
from heliograph.gateway.routing import Route
from heliograph.telemetry.otlp_decode import BadBatch, Decoded, TooLarge, decode_batch, decompress

log = logging.getLogger(__name__)
TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MEDIA_TYPES = MappingProxyType({PROTOBUF: False, "application/protobuf": False, JSON: True})
INLINE_BYTES = 256 * 1024  # larger batches are decoded in a thread, off the event loop
# google.rpc.Code values
INVALID_ARGUMENT, UNAUTHENTICATED, PERMISSION_DENIED = 3, 16, 7
RESOURCE_EXHAUSTED, UNAVAILABLE, UNIMPLEMENTED = 8, 14, 12


def is_traces_route(route: Route) -> bool:
    """True for the OpenAI route's ``/traces`` - ``/v1/traces``, ``/v1/<key>/traces``,
    ``/<key>/v1/traces``, however its slashes were doubled or trailed. OpenAI has no such
    API, and a trace batch (prompts included) must never be forwarded there."""
    return route.upstream == "openai" and route.rest.rstrip("/") == "/traces"


class OtlpIngest:
    """The ASGI handler of ``/v1/traces`` for one app (owns nothing; the app's lifespan
    hands it the key cache and this process's spool)."""

    def __init__(self, settings: Settings, keys: KeyCache, spool: SpoolWriter) -> None:
        self.keys = keys
        self.spool = spool
        self.max_bytes = settings.otlp_max_body_bytes
        self.max_future_ns = int(settings.otlp_max_future_s * 1e9)

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, path_key: str | None = None
    ) -> None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        is_json = MEDIA_TYPES.get(media, True)
        reply = _Reply(send, is_json)
        if scope["method"] != "POST":
            await reply.error(
                405, UNIMPLEMENTED, "Use POST to send OTLP traces.", [("allow", "POST")]
            )
            return
        info = await self._key(headers, path_key)
        if info is None:
            message = "A Heliograph write key is required: 'Authorization: Bearer <write-key>'."
            await reply.error(401, UNAUTHENTICATED, message)
            return
        if not info.allows("write"):
            await reply.error(
                403, PERMISSION_DENIED, "This key cannot send traces (not a write key)."
            )
            return
        if media not in MEDIA_TYPES:
            message = f"Unsupported Content-Type {media!r}: send {PROTOBUF} or {JSON}."
            await reply.error(415, INVALID_ARGUMENT, message)
            return
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await reply.error(413, RESOURCE_EXHAUSTED, self._too_large())
            return
        body = await _read(receive, self.max_bytes)
        if body is None:
            await reply.error(413, RESOURCE_EXHAUSTED, self._too_large())
            return
        try:
            decoded = await self._decode(body, headers.get("content-encoding", ""), is_json)
        except TooLarge as exc:
            await reply.error(413, RESOURCE_EXHAUSTED, str(exc))
            return
        except BadBatch as exc:
            await reply.error(400, INVALID_ARGUMENT, str(exc)[:1000])
            return
        except ValueError as exc:  # an unsupported Content-Encoding
            await reply.error(415, INVALID_ARGUMENT, str(exc))
            return
        if decoded.spans and not self._spool(decoded, info):
            message = "Heliograph could not store the batch right now; retry later."
            await reply.error(503, UNAVAILABLE, message, [("retry-after", "5")])
            return
        await reply.success(decoded)

    def _too_large(self) -> str:
        return f"The batch is larger than {self.max_bytes} bytes; send smaller batches."

    async def _key(self, headers: dict[str, str], path_key: str | None) -> KeyInfo | None:
        """The key in the path (``/v1/<key>/traces``), else in a Bearer header."""
        key = path_key
        for name in ("authorization", "heliograph-auth"):
            value = headers.get(name, "")
            if key is None and value[:7].lower() == "bearer ":
                key = value[7:].strip()
        if not key:
            return None
        return self.keys.get(key) or await self.keys.lookup(key)

    async def _decode(self, body: bytes, encoding: str, is_json: bool) -> Decoded:
        def work() -> Decoded:
            plain = decompress(body, encoding, self.max_bytes)
            return decode_batch(plain, is_json, time.time_ns(), self.max_future_ns)

        if len(body) <= INLINE_BYTES:
            return work()
        return await asyncio.to_thread(work)

    def _spool(self, decoded: Decoded, info: KeyInfo) -> bool:
        """Append the accepted spans as one frame; False if the disk refused."""
        frame: TraceFrame = {
            "id": new_record_id(),
            "ts": time.time(),
            "org": info.org_id,
            "key": info.id,
            "n": len(decoded.spans),
        }
        try:
            self.spool.append(KIND_TRACES, orjson.dumps(frame), orjson.dumps(decoded.spans))
        except OSError as exc:
            log.error("spool write failed, OTLP batch refused with 503: %s", exc)
            return False
        return True


async def _read(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None as soon as it passes ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Reply:
    """Answers in the encoding the request used (JSON when it named neither)."""

    def __init__(self, send: Send, is_json: bool) -> None:
        self.send = send
        self.is_json = is_json

    async def _respond(self, status: int, body: bytes, extra: list[tuple[str, str]]) -> None:
        ctype = JSON if self.is_json else PROTOBUF
        headers = [(b"content-type", ctype.encode()), (b"content-length", str(len(body)).encode())]
        headers += [(k.encode(), v.encode()) for k, v in extra]
        await self.send({"type": "http.response.start", "status": status, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})

    async def error(
        self, status: int, code: int, message: str, extra: list[tuple[str, str]] | None = None
    ) -> None:
        if self.is_json:
            body = orjson.dumps({"code": code, "message": message})
        else:
            body = Status(code=code, message=message).SerializeToString()
        await self._respond(status, body, extra or [])

    async def success(self, decoded: Decoded) -> None:
        response = ExportTraceServiceResponse()
        if decoded.rejected:
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = decoded.message()
        if not self.is_json:
            await self._respond(200, response.SerializeToString(), [])
            return
        doc: dict[str, object] = {}
        if decoded.rejected:  # int64 as a string, as OTLP/JSON writes it
            doc["partialSuccess"] = {
                "rejectedSpans": str(decoded.rejected),
                "errorMessage": decoded.message(),
            }
        await self._respond(200, orjson.dumps(doc), [])
