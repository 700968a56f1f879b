"""Replay: run a logged request again, as it was or edited, on its upstream or another, and
compare the two records side by side.

The replay goes through the real gateway path in-process (so it is recorded and priced like
any other request, linked to its original by the ``replay_of`` property) to the chosen
upstream; ``replay_form`` decides which upstreams can take the record's wire format and at
which path; ``gateway_call`` holds what Replay shares with the prompt Playground. Keys never
cross hosts: the gateway adds only the chosen upstream's own server key, and a key typed
into the form is bound to the upstream it was typed for (``key_for``) and refused for any
other. A typed key is sent upstream for this one request and never
stored (the gateway redacts it) nor shown again. Replaying spends money, so it is an admin
action: the route answers 403 to viewers and the request page offers them no form.

A refused replay (bad JSON, an upstream that cannot take the request) shows the request page
again with the user's input and the reason beside it, status 400. After a replay the page
waits, boundedly, for the writer to store the new record, so the comparison shows the stored
tokens, cost and latency of both.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.responses import Response

from heliograph.gateway.internal import InternalExchange
from heliograph.gateway.redact import REDACTED
from heliograph.providers import error_message, output_text
from heliograph.store.requests import get_request
from heliograph.web import gateway_call
from heliograph.web.context import Ctx
from heliograph.web.format import path
from heliograph.web.replay_form import ReplayForm, Target, replay_problem, targets
from heliograph.web.request_detail import render_detail
from heliograph.web.word_diff import Budget, word_diff

MAX_BODY = 60 * 1024
RECORD_WAIT_S = 5.0  # how long the comparison waits for the writer to store the replay


def parse_body(text: str) -> tuple[dict[str, Any] | None, str]:
    """The edited body as a JSON object, or the reason it is not one (with line and column)."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return None, f"Invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
    if not isinstance(doc, dict):
        return None, "The body must be a JSON object ({...})."
    return doc, ""


def carried_headers(row: dict[str, Any], target: Target) -> list[tuple[str, str]]:
    """The original's headers that shape the call and carry no secret, for this target only:
    Anthropic's version and beta flags to Anthropic-speaking upstreams, OpenAI's organization
    and project to the original provider's own upstreams (never to another host's)."""
    original = row.get("request_headers") or {}
    out = []
    for name in ("anthropic-version", "anthropic-beta"):
        if name in original and target.protocol == "anthropic":
            out.append((name, str(original[name])))
    for name in ("openai-organization", "openai-project"):
        if name in original and target.name == row.get("upstream"):
            out.append((name, str(original[name])))
    return out


def carried_query(row: dict[str, Any], provider: str) -> str:
    """The original's query string (Azure's api-version, say) for a replay on the same
    provider, without the parameters that were stored redacted (credentials never come back
    from the store; the target's own key goes in a header)."""
    query = str(row.get("query") or "")
    if not query or provider != row.get("provider"):
        return ""
    kept = [p for p in re.split(r"[&;]", query) if p and not p.endswith("=" + REDACTED)]
    return "&".join(kept)


class Refused(Exception):
    """A replay that cannot run as asked; shown beside the form field it is about."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _check(ctx: Ctx, row: dict[str, Any], form: ReplayForm, key_for: str) -> tuple[Target, bytes]:
    """The chosen target and the body to send, or Refused."""
    choices = {t.name: t for t in targets(row, ctx.settings.resolved_upstreams())}
    target = choices.get(form.target)
    if target is None or form.target not in ctx.request.app.state.gateway.upstreams:
        raise Refused(f"There is no configured upstream named {form.target!r}.", "target")
    if target.endpoint is None:
        raise Refused(f"Cannot replay on {target.name}: {target.problem}", "target")
    problem = gateway_call.key_problem(ctx.form.get("provider_key", ""), key_for, target.name)
    if problem:
        raise Refused(problem, "key")
    doc, problem = parse_body(form.body)
    if doc is None:
        raise Refused(problem, "body")
    model = form.model.strip()
    if model and model != row.get("model"):  # the field was changed: it wins over the body
        doc["model"] = model
    body = orjson.dumps(doc)
    if len(body) > MAX_BODY:
        raise Refused("The body is too large to replay from the form.", "body")
    return target, body


async def replay(ctx: Ctx) -> Response:
    rid = ctx.request.path_params["request_id"]
    row = await ctx.run(get_request, ctx.engine, ctx.org_id, rid)
    if row is None:
        return ctx.not_found("No such request in your organization.")
    problem = replay_problem(row)
    if problem:
        return ctx.render("error.html", 400, title="Cannot replay", message=problem)
    form = ReplayForm(
        body=ctx.form.get("body", ""),
        target=ctx.form.get("target") or str(row.get("upstream") or ""),
        model=ctx.form.get("model", ""),
    )
    # A form without key_for (an older page) typed its key for the original upstream.
    key_for = ctx.form.get("key_for") or str(row.get("upstream") or "")
    try:
        target, body = _check(ctx, row, form, key_for)
    except Refused as refused:
        form.error, form.field = str(refused), refused.field
        return await render_detail(ctx, row, form, 400)
    headers = carried_headers(row, target)
    headers += [
        ("heliograph-property-replay_of", rid),
        ("heliograph-property-replayed_by", ctx.user.email),
    ]
    if row.get("user_id"):
        headers.append(("heliograph-user-id", str(row["user_id"])))
    provider = ctx.request.app.state.gateway.upstreams[target.name].provider
    key = ctx.form.get("provider_key", "").strip()  # bound to target.name by _check
    exchange, elapsed = await gateway_call.call(
        ctx, target, body, headers, key, carried_query(row, provider)
    )
    new_id = exchange.headers.get("heliograph-id")
    stored = await gateway_call.wait_for_record(ctx, new_id, RECORD_WAIT_S) if new_id else None
    return ctx.render("replay.html", **compare(ctx, row, exchange, stored, target, elapsed))


def change(old: float | None, new: float | None) -> str:
    """The replay against the original, as a signed percentage ("" when either is unknown)."""
    if old is None or new is None or old == 0:
        return ""
    return f"{(new - old) / old * 100:+.0f}%"


def compare(
    ctx: Ctx,
    row: dict[str, Any],
    ex: InternalExchange,
    stored: dict[str, Any] | None,
    target: Target,
    elapsed: float,
) -> dict[str, Any]:
    """What the comparison page shows: both records' figures side by side, both outputs and
    their word diff. Until the replay's record is stored, only what the answer itself says."""
    upstreams = ctx.settings.resolved_upstreams()
    old = gateway_call.figures(row, upstreams)
    if stored is not None:
        new = gateway_call.figures(stored, upstreams)
        new_text = output_text(stored.get("response_body"))
    else:
        new = {"upstream": target.name, "where": "local" if target.local else "cloud"}
        new.update(status=ex.status, latency_ms=elapsed)
        new_text = gateway_call.answer_text(ex, target, elapsed)
    old_text = output_text(row.get("response_body"))
    new_id = ex.headers.get("heliograph-id")
    return {
        "r": row,
        "old": old,
        "new": new,
        "changes": {
            name: change(old.get(name), new.get(name))
            for name in ("total_tokens", "cost_usd", "latency_ms", "ttft_ms")
        },
        "stored": stored is not None,
        "wait_s": RECORD_WAIT_S,
        "new_id": new_id,
        "new_href": path("requests", new_id) if new_id else "",
        "new_status": ex.status,
        "new_error": error_message(bytes(ex.body)) if ex.status >= 400 else None,
        "old_text": old_text,
        "new_text": new_text,
        "diff": word_diff(old_text, new_text, Budget()),
    }
