"""The spool's frames, declared once: what the request path writes and the writer reads.

A request leaves a *start* frame when it arrives and an *end* frame when it finishes (see
``capture/spool.py`` for the bytes around them). Their headers are JSON objects with short
keys: the spool holds every request, and short keys cost less disk and parse time. These
TypedDicts are the one definition of those keys: the gateway builds its frames as them and
the writer reads them as them, so mypy refuses a key one side does not know, and
``tests/test_frames.py`` checks at run time that every key is both written and read.
"""

from __future__ import annotations

from typing import Any, NotRequired, Required, TypedDict


class IdentityFrame(TypedDict, total=False):
    """Who Open WebUI says is asking: its plain user headers or its signed JWT (decoded)."""

    id: str  # X-OpenWebUI-User-Id, the JWT's sub
    name: str
    email: str
    role: str
    groups: list[str]  # X-OpenWebUI-User-Groups ({{USER_GROUPS}}), names
    group_ids: list[str]  # X-OpenWebUI-User-Group-Ids ({{USER_GROUP_IDS}})
    src: str  # headers (plain, forgeable), jwt (verified) or unverified (a token not verified)


class PromptFrame(TypedDict, total=False):
    """The managed prompt a request body named, as the gateway rendered it."""

    name: Required[str]  # the prompt's name
    v: Required[int]  # the version rendered
    label: str  # the label it was found by (absent when asked for by version number)
    inputs: dict[str, str]  # the inputs as substituted (text)


class MetaFrame(TypedDict, total=False):
    """The request's metadata headers, parsed once by the gateway (empty fields left out)."""

    user: str  # Helicone-/Heliograph-User-Id
    ow: IdentityFrame  # Open WebUI's user, once the gateway decided what to trust
    task: str  # Open WebUI's X-OpenWebUI-Task ({{TASK}}), when it names a known task
    msg: str  # Open WebUI's X-OpenWebUI-Message-Id ({{MESSAGE_ID}})
    session: str  # Session-Id, else Open WebUI's X-OpenWebUI-Chat-Id
    path: str  # Session-Path
    name: str  # Session-Name
    props: dict[str, str]  # Property-<name> (names lower case)
    omit_req: bool  # Omit-Request
    omit_resp: bool  # Omit-Response
    model: str  # Model-Override (the model name used for cost)
    ratelimit: str  # RateLimit-Policy, as sent
    prompt: PromptFrame  # the managed prompt the body named (issue 15)
    # The client's W3C traceparent, validated: [trace id, its span (our parent), the span id
    # the gateway sent upstream in its place, trace flags], lower-case hex.
    trace: list[str]


class StartFrame(TypedDict):
    """Written when a request has been authenticated and read; its body is the request."""

    id: str  # record id: UUIDv7, or the client's valid Helicone-Request-Id
    ts: float  # arrival, Unix seconds
    org: str  # organization id
    key: str | None  # API key id; None for Heliograph's own calls (replays)
    up: str  # upstream name (as routed)
    pr: str  # wire protocol of this request: openai, anthropic or ollama
    pv: str  # provider the upstream bills as
    m: str  # HTTP method
    p: str  # path below the upstream's base URL (secrets redacted)
    q: str  # query string (secrets redacted)
    h: list[tuple[str, str]]  # request headers as recorded (secrets redacted)
    md: NotRequired[MetaFrame]  # absent in frames written before it existed


class EndFrame(TypedDict, total=False):
    """Written when the request is over; its body is the response, or what was kept of it."""

    id: Required[str]
    st: int  # HTTP status sent to the client (499: the client left before the answer)
    state: str  # ok, error, cancelled or refused (interrupted needs no end frame)
    err: str | None  # why it failed, in words
    lat: float  # milliseconds from arrival to the last byte sent
    ttfb: float  # milliseconds from arrival to the upstream's response headers
    ct: str  # response content type
    rh: list[tuple[str, str]]  # response headers as sent to the client
    ch: list[tuple[int, float]]  # (bytes received so far, milliseconds) per chunk, bounded
    cut: list[int]  # [head bytes kept, total bytes] when the response's middle was not kept
    att: list[dict[str, Any]]  # every upstream attempt (retries, fallbacks)
    srv: str  # upstream that answered, or "cache"
    cache: str  # hit or miss, when the cache was asked
    rlk: str  # rate-limit counter checked; the writer charges cost to the same one
    # Budgets the request counts against: [budget id, hold id or None, window key, amount
    # reserved, unit, spend bucket] each; the writer settles them with the real usage.
    bud: list[list[Any]]
    bnote: str  # budgets admitted unpriced or unchecked (ledger down), for the record


class TraceFrame(TypedDict):
    """Written by OTLP ingest: one batch of accepted spans, its body their JSON (``SpanData``
    in ``telemetry/otlp_decode.py``). Complete in itself, so it needs no end frame."""

    id: str  # the batch's id (UUIDv7), for logs
    ts: float  # arrival, Unix seconds
    org: str  # organization of the write key
    key: str  # API key id
    n: int  # spans in the body


START_KEYS = frozenset(StartFrame.__annotations__)
END_KEYS = frozenset(EndFrame.__annotations__)
META_KEYS = frozenset(MetaFrame.__annotations__)
TRACE_KEYS = frozenset(TraceFrame.__annotations__)
