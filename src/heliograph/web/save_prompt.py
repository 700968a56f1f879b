""" "Save as prompt": turn a logged request's messages and parameters into a managed prompt.

A request that worked is the best first draft of a prompt. This page takes the record's
messages (read by ``web.chat.conversation``, the request page's own reading of every wire
format, so an Anthropic ``system`` becomes a system message) and its parameters, written in
OpenAI's words as every version is (the inverse of ``gateway.prompt_wire``: Anthropic's
``stop_sequences`` and ``input_schema`` tools, Ollama's ``options`` and ``format``), with the
record's model and upstream, and saves them as a new prompt or as the next version of an
existing one, through the same validation and store functions as the API.

A version holds text messages only, so a request with images, tool calls or tool results in
its messages is refused with the reason rather than saved without them. Saving edits prompts,
so it is an admin action: viewers get 403 (the request page shows them no button). Nothing is
written on the gateway's request path: this is the dashboard's own POST.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import RedirectResponse, Response

from heliograph.api.prompts import MAX_DESCRIPTION, NAME
from heliograph.prompts.templates import TemplateError
from heliograph.prompts.versions import ROLES, VersionError, check_version
from heliograph.store import prompts as prompt_store
from heliograph.store.requests import get_request
from heliograph.web import chat
from heliograph.web.context import Ctx, forbidden
from heliograph.web.format import path

OPENAI_PARAMS = ("temperature", "max_tokens", "top_p", "response_format", "tools", "stop", "seed")
OLLAMA_OPTIONS = {  # Ollama's option: the version's parameter
    "temperature": "temperature",
    "top_p": "top_p",
    "seed": "seed",
    "stop": "stop",
    "num_predict": "max_tokens",
}


class Unsaveable(Exception):
    """Why a record, or the form, cannot become a prompt (shown on the page, 400)."""


def _messages(body: Any) -> list[dict[str, str]]:
    """The request's messages as a version holds them: role and text."""
    out = []
    for i, message in enumerate(chat.conversation(body), 1):
        kinds = {p.kind for p in message.parts} - {"text"}
        if kinds:
            what = ", ".join(sorted(k.replace("_", " ") for k in kinds))
            raise Unsaveable(
                f"Message {i} ({message.role}) holds more than text ({what}); a prompt "
                "version holds text messages only."
            )
        if message.role not in ROLES:
            raise Unsaveable(
                f"Message {i} has the role {message.role!r}; a prompt version holds "
                f"{', '.join(ROLES)} messages only."
            )
        out.append({"role": message.role, "content": message.text})
    if not out:
        raise Unsaveable("The request has no messages to save.")
    return out


def _anthropic_tool(tool: Any) -> Any:
    """An Anthropic tool as a chat-completions function tool; others as they are."""
    if not isinstance(tool, dict) or "input_schema" not in tool or "type" in tool:
        return tool
    function = {"name": tool.get("name"), "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _ollama_format(fmt: Any) -> Any:
    if fmt == "json":
        return {"type": "json_object"}
    if isinstance(fmt, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt}}
    return None


def params_of(protocol: str, body: dict[str, Any]) -> dict[str, Any]:
    """The request's parameters in OpenAI's words (what a version stores)."""
    if protocol == "anthropic":
        out = {k: body.get(k) for k in ("temperature", "max_tokens", "top_p")}
        out["stop"] = body.get("stop_sequences")
        tools = body.get("tools")
        out["tools"] = [_anthropic_tool(t) for t in tools] if isinstance(tools, list) else tools
    elif protocol == "ollama":
        options = body.get("options")
        options = options if isinstance(options, dict) else {}
        out = {ours: options.get(theirs) for theirs, ours in OLLAMA_OPTIONS.items()}
        out |= {"response_format": _ollama_format(body.get("format")), "tools": body.get("tools")}
    else:
        out = {k: body.get(k) for k in OPENAI_PARAMS}
        if out["max_tokens"] is None:
            out["max_tokens"] = body.get("max_completion_tokens")
    return {k: v for k, v in out.items() if v is not None and v != []}


def draft(row: dict[str, Any]) -> dict[str, Any]:
    """The version a record makes (unchecked), or Unsaveable saying why it makes none."""
    body = row.get("request_body")
    if row.get("method") != "POST" or row.get("kind") != "llm":
        raise Unsaveable("Only LLM calls (POST requests) can be saved as a prompt.")
    if not isinstance(body, dict):
        raise Unsaveable("The request body was not stored as JSON, so there is nothing to save.")
    if row.get("body_truncated"):
        raise Unsaveable("The stored request body is truncated, so it cannot be saved exactly.")
    protocol = str(row.get("protocol") or "openai")
    model = body.get("model") if isinstance(body.get("model"), str) else row.get("model")
    return {
        "messages": _messages(body),
        "model": model or None,
        "upstream": row.get("upstream") or None,
        "params": params_of(protocol, body),
    }


def _check_new(name: str, description: str) -> None:
    if not NAME.fullmatch(name):
        raise Unsaveable(
            "The name must be 1 to 100 characters: lowercase letters, digits, '-' and '_', "
            "starting with a letter or digit."
        )
    if len(description) > MAX_DESCRIPTION or "\x00" in description:
        raise Unsaveable(
            f"The description must be at most {MAX_DESCRIPTION} characters (and no NUL)."
        )


def save(engine: Any, org_id: str, by: str, doc: dict[str, Any], form: dict[str, str]) -> str:
    """Save the version as the form says (blocking: runs in a worker thread); the prompt's
    name, or Unsaveable."""
    try:
        fields = check_version({**doc, "message": form.get("message", "")})
    except (TemplateError, VersionError) as exc:
        raise Unsaveable(f"This request cannot be a prompt version: {exc}.") from exc
    if form.get("mode") == "existing":
        name = form.get("existing", "")
        if not name or prompt_store.create_version(engine, org_id, name, fields, by) is None:
            raise Unsaveable("Choose one of your prompts to add the version to.")
        return name
    name, description = form.get("name", "").strip(), form.get("description", "")
    _check_new(name, description)
    try:
        prompt_store.create_prompt(engine, org_id, name, description, by)
    except prompt_store.DuplicateName as exc:
        raise Unsaveable(
            f"A prompt named {name!r} already exists: choose another name, or add this "
            "request as a new version of it."
        ) from exc
    prompt_store.create_version(engine, org_id, name, fields, by)
    return name


async def _render(
    ctx: Ctx, row: dict[str, Any], form: dict[str, str], error: str = "", status: int = 200
) -> Response:
    problem, doc = "", None
    try:
        doc = draft(row)
    except Unsaveable as exc:
        problem, status = str(exc), 400
    prompts = await ctx.run(prompt_store.list_prompts, ctx.engine, ctx.org_id)
    return ctx.render(
        "save_prompt.html",
        status,
        r=row,
        doc=doc,
        problem=problem,
        error=error,
        form=form,
        prompts=prompts,
        pretty=chat.pretty,
    )


async def _record(ctx: Ctx) -> dict[str, Any] | None:
    rid = ctx.request.path_params["request_id"]
    return await ctx.run(get_request, ctx.engine, ctx.org_id, rid)


async def save_prompt_form(ctx: Ctx) -> Response:
    if not ctx.user.is_admin:  # the POST route checks this itself
        return forbidden(ctx.ui, ctx.user, "Only admins can save prompts; you are a viewer.")
    row = await _record(ctx)
    if row is None:
        return ctx.not_found("No such request in your organization.")
    existing = ctx.request.query_params.get("prompt", "")
    form = {"mode": "existing" if existing else "new", "existing": existing}
    return await _render(ctx, row, form)


async def save_prompt_action(ctx: Ctx) -> Response:
    row = await _record(ctx)
    if row is None:
        return ctx.not_found("No such request in your organization.")
    try:
        doc = draft(row)
        by = f"user:{ctx.user.id}"
        name = await ctx.run(save, ctx.engine, ctx.org_id, by, doc, ctx.form)
    except Unsaveable as exc:
        return await _render(ctx, row, ctx.form, str(exc), 400)
    return RedirectResponse(path("prompts", name), 303)
