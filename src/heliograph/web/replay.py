"""Replay: run a logged request again, as it was or edited, and compare with the original.

The replay goes through the real gateway path in-process (so it is recorded like any other
request, linked to its original by the ``replay_of`` property) to the original upstream. A
provider key typed into the form is sent upstream for this one request and never stored: the
gateway redacts it before anything is written, like every client's key. Replaying spends
money (the server's provider key pays unless one is typed), so it is an admin action: the
route answers 403 to viewers and the request page offers them no form.
"""

from __future__ import annotations

import difflib
import re
import time
from typing import Any

import orjson
from starlette.responses import Response

from heliograph.auth.keys import KeyInfo
from heliograph.capture.enrich import cost_columns
from heliograph.gateway.internal import InternalExchange
from heliograph.gateway.upstreams import provider_auth
from heliograph.providers import analyser, error_message, output_text
from heliograph.providers.analysis import Analysis
from heliograph.store.requests import get_request
from heliograph.web.context import Ctx

# Request headers that shape the call but carry no secret; copied from the original.
CARRIED_HEADERS = ("anthropic-version", "anthropic-beta", "openai-organization", "openai-project")
MAX_BODY = 60 * 1024
_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


def replay_problem(row: dict[str, Any], upstreams: dict[str, Any]) -> str | None:
    """Why a record cannot be replayed, or None when it can."""
    if row.get("method") != "POST" or row.get("kind") != "llm":
        return "Only LLM calls (POST requests) can be replayed."
    if row.get("request_body") is None:
        return "The request body was not stored (omitted or missing), so it cannot be replayed."
    if row.get("body_truncated"):
        return "The stored request body is truncated, so it cannot be replayed exactly."
    if row.get("upstream") not in upstreams:
        return f"The upstream {row.get('upstream')!r} is no longer configured."
    return None


def replay_body(row: dict[str, Any]) -> str:
    """The original request as editable, pretty JSON."""
    body = row.get("request_body")
    if isinstance(body, str):
        return body
    return orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()


def word_diff(old: str, new: str) -> list[tuple[str, str]]:
    """(op, text) pieces: op is "same", "del" or "ins"; rendered escaped by the template."""
    a, b = _WORDS.findall(old), _WORDS.findall(new)
    out: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("del", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("ins", "".join(b[j1:j2])))
    return out


def _body_doc(raw: bytes | bytearray | None) -> Any:
    if not raw:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


async def replay(ctx: Ctx) -> Response:
    rid = ctx.request.path_params["request_id"]
    row = await ctx.run(get_request, ctx.engine, ctx.org_id, rid)
    if row is None:
        return ctx.not_found("No such request in your organization.")
    gateway = ctx.request.app.state.gateway
    problem = replay_problem(row, gateway.upstreams)
    if problem:
        return ctx.render("error.html", 400, title="Cannot replay", message=problem)
    text = ctx.form.get("body", "")
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return ctx.render("error.html", 400, title="Cannot replay", message=f"Invalid JSON: {exc}")
    if not isinstance(doc, dict):
        return ctx.render(
            "error.html", 400, title="Cannot replay", message="The body must be a JSON object."
        )
    body = orjson.dumps(doc)
    if len(body) > MAX_BODY:
        return ctx.render(
            "error.html",
            400,
            title="Cannot replay",
            message="The body is too large to replay from the form.",
        )
    original_headers = row.get("request_headers") or {}
    headers = [("content-type", "application/json")]
    headers += [(h, str(original_headers[h])) for h in CARRIED_HEADERS if h in original_headers]
    headers += [
        ("heliograph-property-replay_of", rid),
        ("heliograph-property-replayed_by", ctx.user.email),
    ]
    if row.get("user_id"):
        headers.append(("heliograph-user-id", str(row["user_id"])))
    key = ctx.form.get("provider_key", "").strip()
    if key:
        headers.append(provider_auth(str(row.get("protocol")), str(row.get("provider")), key))
    started = time.perf_counter()
    exchange = await InternalExchange(gateway).run(
        KeyInfo("", ctx.org_id, "write"), str(row["upstream"]), str(row["endpoint"]), body, headers
    )
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return ctx.render(
        "replay.html",
        r=row,
        **compare(ctx, row, exchange, doc, elapsed),
    )


def compare(
    ctx: Ctx, row: dict[str, Any], ex: InternalExchange, doc: dict[str, Any], elapsed: float
) -> dict[str, Any]:
    """What the comparison page shows: both outputs, their diff, tokens, cost, latency."""
    analysis = Analysis()
    protocol = analyser(str(row.get("protocol") or "openai"))
    endpoint = str(row["endpoint"])
    protocol.analyse_request("POST", endpoint, orjson.dumps(doc), "application/json", analysis)
    ctype = ex.headers.get("content-type", "")
    protocol.analyse_response(endpoint, bytes(ex.body), ctype, [(len(ex.body), elapsed)], analysis)
    new_text = output_text(_body_doc(analysis.response_body))
    old_text = output_text(row.get("response_body"))
    cost = cost_columns(
        analysis,
        ctx.request.app.state.pricebook,
        provider=str(row["provider"]),
        upstream=str(row["upstream"]),
        model_override=None,
        created_ms=int(time.time() * 1000),
        latency_ms=elapsed,
        cache_hit=False,
    )
    error = error_message(bytes(ex.body)) if ex.status >= 400 else None
    return {
        "new_id": ex.headers.get("heliograph-id"),
        "new_status": ex.status,
        "new_error": error,
        "new_text": new_text,
        "old_text": old_text,
        "diff": word_diff(old_text, new_text),
        "new_model": analysis.response_model or analysis.model,
        "new_prompt_tokens": analysis.prompt_tokens,
        "new_completion_tokens": analysis.completion_tokens,
        "new_cost_usd": cost["cost_nusd"] / 1e9 if cost["cost_known"] else None,
        "new_latency_ms": elapsed,
    }
