"""Where a prompt runs: the upstream a version names, and the virtual models a list shows.

A version may name an ``upstream``. A request rendered from it goes there when that upstream
speaks the request's wire protocol at the request's path, else it is refused (400): a body
written for one protocol is never sent to a server of another. A client's Target-URL header
still decides (the client wins), and the client's provider key never follows the request to
an upstream it did not address.

Every prompt with a ``production`` version is a virtual model ``prompt:<name>``, added to the
OpenAI ``GET .../models`` answer (also Ollama's ``/v1/models``) and to Ollama's
``GET /api/tags``, where the route can run it. The list comes from the in-memory
``PromptCache``; the upstream's own list is merged in. When the upstream fails (an error
status, no answer, a body that is not a models list, or one larger than ``MAX_LIST_BYTES``:
the answer is read whole to merge it, so it is read boundedly), the answer is still 200 with
the prompts, so a chat front end does not lose every model; its status is in the
``Heliograph-Upstream-Status`` header, and the record notes it as an attempt and an error.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson

from heliograph.capture.frames import EndFrame
from heliograph.gateway.prompt_body import VIRTUAL, PromptRefused
from heliograph.gateway.prompt_cache import Listed, PromptCache
from heliograph.gateway.relay import IdHeaders, Relay, Send, ms_since
from heliograph.gateway.routing import protocol_for
from heliograph.gateway.upstreams import Upstream

Json = dict[str, Any]
MAX_LIST_BYTES = 16 * 1024 * 1024  # a models list is read whole to merge it: at most this


class TooLarge(Exception):
    """An upstream's models answer larger than MAX_LIST_BYTES."""


async def _read_list(opened: aiohttp.ClientResponse) -> bytes:
    """The whole answer, or TooLarge as soon as it passes MAX_LIST_BYTES."""
    if (opened.content_length or 0) > MAX_LIST_BYTES:
        raise TooLarge
    data = bytearray()
    async for chunk in opened.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > MAX_LIST_BYTES:
            raise TooLarge
    return bytes(data)


def prompt_upstream(
    upstreams: dict[str, Upstream],
    routed: Upstream,
    named: str | None,
    rest: str,
    protocol: str,
) -> Upstream:
    """The upstream a rendered request goes to; PromptRefused (400) when it cannot."""
    if named is None or named == routed.name:
        return routed
    target = upstreams.get(named)
    if target is None:
        msg = f"the prompt's upstream {named!r} is not configured on this gateway"
        raise PromptRefused(400, msg, "invalid_prompt_upstream")
    if protocol_for(target.protocol, rest) != protocol:
        msg = (
            f"the prompt's upstream {named!r} does not speak the {protocol} protocol at "
            f"{rest}; send this request to a route of that upstream instead"
        )
        raise PromptRefused(400, msg, "invalid_prompt_upstream")
    return target


@dataclass(frozen=True, slots=True)
class Listing:
    """The virtual models to add to one models answer."""

    kind: str  # "openai" (a data list) or "ollama" (/api/tags)
    entries: list[Json]


def listing(
    cache: PromptCache,
    upstreams: dict[str, Upstream],
    routed: Upstream,
    org_id: str,
    protocol: str,
    method: str,
    rest: str,
) -> Listing | None:
    """What to add to this request's answer, if it is a models list and there are prompts."""
    if method != "GET":
        return None
    if protocol == "openai" and rest.endswith("/models"):
        kind, chat = "openai", rest[: -len("/models")] + "/chat/completions"
    elif protocol == "ollama" and rest == "/api/tags":
        kind, chat = "ollama", "/api/chat"
    else:
        return None
    listed = cache.listed(org_id)
    if not listed:
        return None
    make = _openai_entry if kind == "openai" else _ollama_entry
    entries = [make(item) for item in listed if _runs_here(item, upstreams, routed, chat, protocol)]
    return Listing(kind, entries) if entries else None


def _runs_here(
    item: Listed, upstreams: dict[str, Upstream], routed: Upstream, chat: str, protocol: str
) -> bool:
    try:
        prompt_upstream(upstreams, routed, item.version.upstream, chat, protocol)
    except PromptRefused:
        return False
    return True


def _openai_entry(item: Listed) -> Json:
    created = item.created_ms // 1000
    name = VIRTUAL + item.version.name
    return {"id": name, "object": "model", "created": created, "owned_by": "heliograph"}


def _ollama_entry(item: Listed) -> Json:
    version = item.version
    name = VIRTUAL + version.name
    when = datetime.fromtimestamp(item.created_ms / 1000, UTC)
    digest = hashlib.sha256(f"{name}:{version.version}".encode()).hexdigest()
    details = {
        "parent_model": version.model or "",
        "format": "",
        "family": "",
        "families": None,
        "parameter_size": "",
        "quantization_level": "",
    }
    return {
        "name": name,
        "model": name,
        "modified_at": when.isoformat(),
        "size": 0,
        "digest": digest,
        "details": details,
    }


def merged(kind: str, data: bytes | None, entries: list[Json]) -> bytes | None:
    """The upstream's models answer with the virtual models added (those it does not list
    already); None when ``data`` is not a models list."""
    field, key = ("data", "id") if kind == "openai" else ("models", "name")
    if data is None:
        doc: Any = {"object": "list", "data": []} if kind == "openai" else {"models": []}
    else:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(doc, dict) or not isinstance(doc.get(field), list):
            return None
    items: list[Any] = doc[field]
    have = {item.get(key) for item in items if isinstance(item, dict)}
    items.extend(e for e in entries if e[key] not in have)
    return orjson.dumps(doc)


async def answer(
    relay: Relay,
    send: Send,
    opened: aiohttp.ClientResponse | tuple[int, str, str],
    add: Listing,
    upstream: str,
    t0: float,
    end: EndFrame,
    id_headers: IdHeaders,
) -> None:
    """Answer a models list with the virtual models merged in, and record it."""
    data: bytes | None = None
    problem: str | None = None
    if isinstance(opened, aiohttp.ClientResponse):
        status = opened.status
        try:
            data = await _read_list(opened)
        except TooLarge:
            problem = f"a models list larger than {MAX_LIST_BYTES} bytes"
            opened.close()  # the rest is never read
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            status, problem = 502, f"connection lost: {exc!r}"
            opened.close()
        finally:
            opened.release()
    else:
        status, problem = opened[0], opened[1]
    ttfb = ms_since(t0)
    body = merged(add.kind, data, add.entries) if status == 200 and data is not None else None
    if body is None:
        problem = problem or (
            f"HTTP {status}" if status != 200 else "an answer that is not a models list"
        )
        body = merged(add.kind, None, add.entries)
        assert body is not None
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"heliograph-upstream-status", str(status).encode()),
        *id_headers,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
    lat = ms_since(t0)
    err = None if problem is None else f"Upstream {upstream} failed ({problem}): prompts only."
    end.update(
        {
            "st": 200,
            "state": "ok",
            "err": err,
            "lat": lat,
            "ttfb": ttfb,
            "ct": "application/json",
            "rh": [(k.decode(), v.decode()) for k, v in headers],
            "ch": [(len(body), lat)],
            "att": [{"upstream": upstream, "status": status, "ms": ttfb}],
        }
    )
    relay.end(end, body)
