"""What dashboard actions that call a provider share: Replay and the prompt Playground.

Both run a request through the real gateway path in-process (``InternalExchange``), so it is
recorded and priced like any other. A provider key typed into their forms is bound to the
upstream it was typed for (``key_problem``) and sent to that upstream only, for that one
request: the gateway redacts it, so it is never stored, and the forms never send it back.
After the call the page waits, boundedly, for the writer to store the record, so it shows the
stored tokens, cost and latency (``wait_for_record``, ``figures``); until then, only what the
answer itself says (``answer_text``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from heliograph.auth.keys import KeyInfo
from heliograph.gateway.internal import InternalExchange
from heliograph.gateway.routing import protocol_for
from heliograph.gateway.upstreams import provider_auth
from heliograph.providers import analyser, output_text
from heliograph.providers.analysis import Analysis
from heliograph.store.requests import get_request
from heliograph.web.context import Ctx
from heliograph.web.replay_form import Target
from heliograph.web.request_detail import tok_s, where

RECORD_POLL_S = 0.1


def key_problem(typed: str, key_for: str, target: str) -> str | None:
    """Why a typed key may not go to ``target`` (it was typed for another upstream)."""
    if not typed.strip() or key_for == target:
        return None
    return (
        f"The API key was typed for {key_for or 'another upstream'}, and a key is only "
        f"ever sent to the upstream it was typed for, not to {target}. "
        f"Type the key for {target}, or leave the field empty to use its server key."
    )


async def call(
    ctx: Ctx,
    target: Target,
    body: bytes,
    headers: list[tuple[str, str]],
    key: str = "",
    query: str = "",
) -> tuple[InternalExchange, float]:
    """Send ``body`` to ``target`` through the gateway as the logged-in user's organization;
    ``key`` (already checked to be bound to ``target``) replaces the server's key. Returns
    the exchange and the milliseconds it took."""
    gateway = ctx.request.app.state.gateway
    upstream = gateway.upstreams[target.name]
    sent = [("content-type", "application/json"), *headers]
    if key:
        sent.append(provider_auth(upstream.protocol, upstream.provider, key))
    started = time.perf_counter()
    exchange = await InternalExchange(gateway).run(
        KeyInfo("", ctx.org_id, "write"), target.name, str(target.endpoint), body, sent, query
    )
    return exchange, round((time.perf_counter() - started) * 1000, 1)


async def wait_for_record(ctx: Ctx, rid: str, wait_s: float) -> dict[str, Any] | None:
    """The record once the writer stored it; None after ``wait_s`` seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        row = await ctx.run(get_request, ctx.engine, ctx.org_id, rid)
        if row is not None or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(RECORD_POLL_S)


def answer_text(ex: InternalExchange, target: Target, elapsed: float) -> str:
    """The output read from the answer itself (a stream is reassembled), for when its record
    is not stored yet."""
    analysis = Analysis()
    endpoint = str(target.endpoint)
    wire = protocol_for(target.protocol, endpoint)
    if wire != target.protocol:  # an OpenAI-compatible layer under /v1 (Ollama, Anthropic)
        endpoint = endpoint.removeprefix("/v1")
    ctype = ex.headers.get("content-type", "")
    marks = [(len(ex.body), elapsed)]
    analyser(wire).analyse_response(endpoint, bytes(ex.body), ctype, marks, analysis)
    body = analysis.response_body
    if not body:
        return ""
    try:
        return output_text(orjson.loads(body))
    except orjson.JSONDecodeError:
        return ""


def figures(row: dict[str, Any], upstreams: dict[str, Any]) -> dict[str, Any]:
    """One column of a side-by-side comparison, from a stored record."""
    return {
        "upstream": row.get("upstream"),
        "where": where(row, upstreams),
        "model": row.get("response_model") or row.get("model"),
        "status": row.get("status"),
        "prompt_tokens": row.get("prompt_tokens"),
        "completion_tokens": row.get("completion_tokens"),
        "total_tokens": row.get("total_tokens"),
        "cost_usd": row.get("cost_usd") if row.get("cost_known") else None,
        "latency_ms": row.get("latency_ms"),
        "ttft_ms": row.get("ttft_ms"),
        "tps": tok_s(row.get("output_tokens_per_s")),
    }
