"""Turning a spooled start frame (and its end frame, if any) into the rows of one record.

The record is one flat row in ``requests`` plus its bodies and properties. Everything here is
defensive: the input is whatever a client and an upstream sent, and a record must always come
out, with strings clamped to what the columns hold and no NUL characters (PostgreSQL refuses
them).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import String

from heliograph.capture.enrich import cost_columns, estimate_missing_tokens
from heliograph.capture.frames import EndFrame, MetaFrame, StartFrame
from heliograph.capture.people import Person, chat_title, openwebui_columns, person_of
from heliograph.gateway.headers import metadata_from_headers, user_of
from heliograph.pricing import PriceBook
from heliograph.providers import analyser, error_message
from heliograph.providers.analysis import Analysis
from heliograph.store.bodies import ENCODING, BodyPacker
from heliograph.store.schema import requests

_DATA_URL = re.compile(rb"data:([a-zA-Z0-9.+/-]{1,64});base64,([A-Za-z0-9+/=\\]{512,})")
# Bare base64 payloads in JSON: input_audio.data, image b64_json, audio.data in responses.
_BARE_B64 = re.compile(rb'"(data|b64_json|audio)"(\s*:\s*)"([A-Za-z0-9+/=\\]{1024,})"')
INT_MAX = 2**31 - 1
STATE_INTERRUPTED = "interrupted"


# The text columns' lengths, as the schema declares them (what ``clean`` clamps to).
_LENGTHS = {
    c.name: c.type.length
    for c in requests.columns
    if isinstance(c.type, String) and c.type.length is not None
}
MAX_STORED_HEADERS = 200
MAX_STORED_HEADER_BYTES = 64 * 1024


@dataclass(slots=True)
class RecordRows:
    request: dict[str, Any]
    body: dict[str, Any]
    properties: list[dict[str, Any]] = field(default_factory=list)
    rate_limit_policy: str | None = None
    rate_limit_key: str | None = None  # the counter the gateway checked, charged the same
    groups: list[dict[str, Any]] = field(default_factory=list)  # request_groups rows
    person: Person | None = None  # what the end-user directory learns
    budgets: list[list[Any]] | None = None  # the end frame's "bud": usage to settle


def splice(body: bytes, end: EndFrame) -> tuple[bytes, list[Any], bool]:
    """The response as the analysers read it, its marks, and whether its middle was cut.

    The gateway keeps the head of a response past the stored-body cap and a tail window
    (``cut`` = [head bytes, total bytes]); a stream's head and tail are trimmed to whole
    events and joined, so its usage (in the last events) is still read. A cut non-stream
    body is kept as its head only.
    """
    marks = end.get("ch") or []
    cut = end.get("cut")
    if not cut:
        return body, marks, False
    head_len, total = int(cut[0]), int(cut[1])
    head, tail = body[:head_len], body[head_len:]
    ctype = str(end.get("ct", ""))
    sep = b"\n\n" if ctype.startswith("text/event-stream") else b"\n" if "ndjson" in ctype else b""
    if not sep:
        return head, [m for m in marks if m[0] <= head_len], True
    keep_head = head.rfind(sep)
    keep_head = keep_head + len(sep) if keep_head >= 0 else 0
    skip_tail = tail.find(sep)
    skip_tail = skip_tail + len(sep) if skip_tail >= 0 else len(tail)
    tail_start = total - len(tail) + skip_tail  # original offset of the first kept tail byte
    shift = tail_start - keep_head
    spliced = [m for m in marks if m[0] <= keep_head]
    spliced += [(m[0] - shift, m[1]) for m in marks if m[0] > tail_start]
    return head[:keep_head] + tail[skip_tail:], spliced, True


def clean(text: Any, limit: int) -> str | None:
    """A string fit for a column: NULs removed, at most ``limit`` characters."""
    if type(text) is str and len(text) <= limit and "\x00" not in text:
        return text  # the usual case, checked first
    if text is None:
        return None
    if not isinstance(text, str):
        text = str(text)
    if "\x00" in text:
        text = text.replace("\x00", "")
    return str(text[:limit])


def strip_inline_media(body: bytes) -> bytes:
    """Replace large base64 media (data URLs, audio, b64 images) with a type-and-size note."""

    def placeholder(match: re.Match[bytes]) -> bytes:
        size = len(match.group(2)) * 3 // 4
        return b"data:" + match.group(1) + b";base64,[omitted by Heliograph: %d bytes]" % size

    def bare(match: re.Match[bytes]) -> bytes:
        size = len(match.group(3)) * 3 // 4
        note = b"[omitted by Heliograph: %d bytes of base64]" % size
        return b'"' + match.group(1) + b'"' + match.group(2) + b'"' + note + b'"'

    if b";base64," in body:
        body = _DATA_URL.sub(placeholder, body)
    if len(body) > 1024 and (b'"data"' in body or b'"b64_json"' in body or b'"audio"' in body):
        body = _BARE_B64.sub(bare, body)
    return body


def clamp_int(value: int | None) -> int | None:
    """Token counts fit the column (an upstream reporting 2**40 tokens must not block a batch)."""
    if value is None:
        return None
    return max(0, min(int(value), INT_MAX))


def _omitted(request: bool, response: bool) -> str | None:
    if request and response:
        return "both"
    return "request" if request else "response" if response else None


def normalise_model(model: str | None) -> str | None:
    """One name per model across routes: Ollama's implicit ``:latest`` tag is dropped."""
    if model and model.endswith(":latest"):
        return model[: -len(":latest")]
    return model


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _content_type(headers: Sequence[Sequence[str]]) -> str:
    for name, value in headers:
        if name == "content-type":
            return value
    return ""


def provider_of(start: StartFrame) -> str:
    """The provider a record is priced as: the upstream's, else the upstream's name."""
    return str(start.get("pv") or start.get("up") or "openai")


@dataclass(slots=True)
class Outcome:
    """How the exchange ended, as the end frame and the response's analysis tell it."""

    state: str
    status: int
    latency: float | None
    ttfb: float | None
    error: str | None
    response_body: bytes  # as analysed: a cut stream spliced to whole events
    cut: bool  # the middle of the response was not kept


def _outcome(
    end: EndFrame | None, response_body: bytes, endpoint: str, protocol: Any, out: Analysis
) -> Outcome:
    """Read the end frame and analyse the response into ``out``; no end frame means the
    gateway stopped mid-request."""
    if end is None:
        message = "Gateway stopped before the request finished."
        return Outcome(STATE_INTERRUPTED, 0, None, None, message, response_body, False)
    state = str(end.get("state", "ok"))
    status = int(end.get("st", 0))
    error = end.get("err")
    response_body, marks, cut = splice(response_body, end)
    if (status and status < 400) or response_body:
        protocol.analyse_response(endpoint, response_body, str(end.get("ct", "")), marks, out)
    if out.stream_error and state == "ok":
        state, error = "error", out.stream_error
    if status >= 400 and out.response_body:
        error = error_message(out.response_body) or error
    return Outcome(state, status, end.get("lat"), end.get("ttfb"), error, response_body, cut)


def _speeds(analysis: Analysis, outcome: Outcome) -> tuple[float | None, float | None]:
    """(output tokens/s, time to first token): the server's own figures when it gave them,
    else from the stream's timing (or the whole latency for a non-stream answer)."""
    latency = outcome.latency
    tokens_per_s = analysis.server_tokens_per_s
    if tokens_per_s is None and analysis.completion_tokens and latency:
        window = analysis.generation_ms if analysis.stream else latency
        if window and window > 0:
            tokens_per_s = analysis.completion_tokens / (window / 1000.0)
    if tokens_per_s is not None:
        tokens_per_s = round(tokens_per_s, 2)
    ttft = analysis.ttft_ms if analysis.stream else None
    if ttft is None and analysis.stream and analysis.kind == "llm":
        ttft = outcome.ttfb if outcome.state == "ok" else None
    return tokens_per_s, ttft


def build_record(
    start: StartFrame,
    request_body: bytes,
    end: EndFrame | None,
    response_body: bytes,
    *,
    provider: str,
    body_cap: int,
    pricebook: PriceBook | None = None,
    packer: BodyPacker | None = None,
) -> RecordRows:
    """The rows for one request; ``end`` is None when the gateway died mid-request."""
    method = str(start.get("m", "POST"))
    endpoint = str(start.get("p", "/"))
    headers = start.get("h") or []
    protocol = analyser(str(start.get("pr", "openai")))
    analysis = Analysis()
    protocol.analyse_request(method, endpoint, request_body, _content_type(headers), analysis)
    outcome = _outcome(end, response_body, endpoint, protocol, analysis)
    done: EndFrame = end if end is not None else {"id": start["id"]}
    md = start.get("md")
    if md is None:  # a frame from before the gateway carried its parse
        md = metadata_from_headers(headers)
    estimated = estimate_missing_tokens(analysis, endpoint) if outcome.status < 400 else False
    created_ms = int(float(start["ts"]) * 1000)
    cache_hit = done.get("cache") == "hit"
    costs = cost_columns(
        analysis,
        pricebook,
        provider=provider,
        upstream=str(done.get("srv") or start.get("up", provider)),
        model_override=md.get("model"),
        created_ms=created_ms,
        latency_ms=outcome.latency,
        cache_hit=cache_hit,
    )
    tokens_per_s, ttft = _speeds(analysis, outcome)
    props = md.get("props") or {}
    properties = {str(clean(k, 255)): str(clean(v, 1000)) for k, v in props.items()}
    omit_request, omit_response = md.get("omit_req", False), md.get("omit_resp", False)
    attempts = done.get("att") or None
    rid, org_id = str(start["id"]), str(start["org"])
    user_id = clean(user_of(md, analysis.user), 255)
    ow = _openwebui(md, user_id, analysis, outcome)
    title = ow.pop("title")
    request_row = {
        "id": rid,
        "org_id": org_id,
        "key_id": start.get("key"),
        "created_at": created_ms,
        "kind": analysis.kind,
        "provider": provider,
        "upstream": clean(start.get("up", provider), 64),
        "method": clean(method, 8),
        "endpoint": clean(endpoint, 255),
        "model": clean(normalise_model(analysis.model), 255),
        "response_model": clean(normalise_model(analysis.response_model), 255),
        "stream": analysis.stream,
        "status": outcome.status,
        "state": outcome.state,
        "error": clean(outcome.error, 4000),
        "latency_ms": outcome.latency,
        "ttft_ms": ttft,
        "output_tokens_per_s": tokens_per_s,
        "prompt_tokens": clamp_int(analysis.prompt_tokens),
        "completion_tokens": clamp_int(analysis.completion_tokens),
        "total_tokens": clamp_int(analysis.total_tokens),
        "cached_tokens": clamp_int(analysis.cached_tokens),
        "reasoning_tokens": clamp_int(analysis.reasoning_tokens),
        "user_id": user_id,
        "session_id": clean(md.get("session"), 255),
        "properties": properties or None,
        "protocol": clean(start.get("pr", "openai"), 16),
        "cache_write_tokens": clamp_int(analysis.cache_write_tokens),
        "prompt_tokens_per_s": _round(analysis.prompt_tokens_per_s),
        "load_ms": _round(analysis.load_ms),
        "tokens_estimated": estimated,
        **costs,
        "price_ref": clean(costs.get("price_ref"), 255),
        "cost_saved_nusd": costs.get("cost_saved_nusd"),
        "session_path": clean(md.get("path"), 255),
        "session_name": clean(md.get("name"), 255) or title,
        "cache_hit": cache_hit,
        "retries": max(len(attempts) - 1, 0) if attempts else 0,
        "attempts": attempts,
        "served_by": clean(done.get("srv"), 64),
        "omitted": _omitted(omit_request, omit_response),
        "model_override": clean(md.get("model"), 255),
        "budget_note": clean(done.get("bnote"), 255),
        **ow,
        **_prompt_columns(md),
        **_trace_columns(md),
    }
    body_row = _body_row(
        start,
        end,
        request_body,
        analysis,
        outcome,
        (omit_request, omit_response),
        body_cap,
        packer or BodyPacker(),
    )
    body_row["created_at"] = created_ms  # what PostgreSQL partitions bodies by
    rows = [
        {"request_id": rid, "name": k, "value": v, "org_id": org_id} for k, v in properties.items()
    ]
    groups = [
        {"request_id": rid, "name": name, "org_id": org_id}
        for name in dict.fromkeys(request_row["user_groups"] or ())
    ]
    return RecordRows(
        request_row,
        body_row,
        rows,
        md.get("ratelimit"),
        done.get("rlk"),
        groups,
        person_of(md, request_row),
        done.get("bud"),
    )


def _prompt_columns(md: MetaFrame) -> dict[str, Any]:
    """The managed prompt a request used (all None for a request that named none)."""
    prompt = md.get("prompt")
    if prompt is None:
        return dict.fromkeys(("prompt_name", "prompt_version", "prompt_label", "prompt_inputs"))
    return {
        "prompt_name": clean(prompt["name"], 100),
        "prompt_version": clamp_int(prompt["v"]),
        "prompt_label": clean(prompt.get("label"), 100),
        "prompt_inputs": prompt.get("inputs"),
    }


def _trace_columns(md: MetaFrame) -> dict[str, Any]:
    """The W3C trace context: the client's trace and span (the parent), the gateway's span."""
    trace = md.get("trace")
    if not trace:
        return {"trace_id": None, "span_id": None, "parent_span_id": None, "source": "gateway"}
    return {
        "trace_id": trace[0],
        "parent_span_id": trace[1],
        "span_id": trace[2],
        "source": "gateway",
    }


def _openwebui(
    md: MetaFrame, user_id: str | None, analysis: Analysis, outcome: Outcome
) -> dict[str, Any]:
    """The Open WebUI columns, clamped, and the chat title under "title" (the caller makes
    it the session's name)."""
    raw = openwebui_columns(md, user_id, analysis)
    out: dict[str, Any] = {k: clean(v, _LENGTHS[k]) for k, v in raw.items() if k != "user_groups"}
    groups = raw["user_groups"]
    out["user_groups"] = [g for g in (clean(str(x), 255) for x in groups) if g] if groups else None
    ok = outcome.state == "ok" and 0 < outcome.status < 400
    out["title"] = clean(chat_title(raw["task"], analysis, ok), 255)
    return out


def _body_row(
    start: StartFrame,
    end: EndFrame | None,
    request_body: bytes,
    analysis: Analysis,
    outcome: Outcome,
    omit: tuple[bool, bool],
    body_cap: int,
    packer: BodyPacker,
) -> dict[str, Any]:
    """The bodies (media stripped, compressed, capped), headers and query as stored."""
    omit_request, omit_response = omit
    req_packed, req_trunc = (
        (None, False) if omit_request else packer.pack(strip_inline_media(request_body), body_cap)
    )
    response = outcome.response_body
    out_body = analysis.response_body if analysis.response_body is not None else response
    if out_body:
        out_body = strip_inline_media(out_body)
    keep = not omit_response and (end is not None or bool(out_body))
    resp_packed, resp_trunc = packer.pack(out_body if keep else None, body_cap)
    stored_headers = {
        "request": _capped_headers(start.get("h") or []),
        "query": clean(start.get("q"), 4000) or None,
        "response": _response_headers(end.get("rh") or []) if end is not None else [],
    }
    return {
        "request_id": str(start["id"]),
        "encoding": ENCODING,
        "request_body": req_packed,
        "response_body": resp_packed,
        "request_headers": stored_headers,
        "truncated": req_trunc or resp_trunc or outcome.cut,
    }


def _capped_headers(raw: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Request headers as stored: at most 200, 64 KiB in all; a last entry says what was
    left out (the server bounds the header block too, but an in-process caller may not)."""
    out: list[list[str | None]] = []
    size = 0
    for index, (name, value) in enumerate(raw):
        item = [clean(name, 255), clean(value, 4000)]
        size += len(item[0] or "") + len(item[1] or "")
        if index >= MAX_STORED_HEADERS or size > MAX_STORED_HEADER_BYTES:
            left = len(raw) - index
            out.append(["x-heliograph-truncated", f"{left} more request headers not stored"])
            break
        out.append(item)
    return out


def _response_headers(raw: Sequence[Sequence[str]]) -> list[list[str | None]]:
    return [
        [clean(n, 255), clean(v, 4000)]
        for n, v in raw[:MAX_STORED_HEADERS]
        if n.lower() != "set-cookie"
    ]
