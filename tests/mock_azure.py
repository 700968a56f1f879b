"""Azure OpenAI's deployment routes for the mock upstream, shaped as Azure answers.

Azure differs from OpenAI on the wire in ways a gateway must pass through untouched:
``/openai/deployments/{deployment}/...`` paths with a required ``api-version`` query, the
key in an ``api-key`` header, the served model's full name in ``model`` (not the deployment
name the client asked for), content-filter annotations, and on streams a first chunk with no
choices and empty head fields that carries the prompt filter results.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from mock_upstream import (
    _CTL,
    _id,
    chat_usage,
    json_response,
    prompt_tokens_for,
    read_json,
    split_pieces,
    sse,
    text_chars,
    wants_usage,
)

AZURE_MODEL = "gpt-4o-2024-11-20"  # what a deployment named anything reports it serves
AZURE_TEXT = "Azure says hello from the deployment."
_SAFE = {"filtered": False, "severity": "safe"}
FILTERS = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTERS = [{"prompt_index": 0, "content_filter_results": FILTERS}]


def _azure_error(status: int, code: str, message: str) -> web.Response:
    return json_response({"error": {"code": code, "message": message}}, status)


async def _azure_body(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON body, or the answer Azure gives without an api-version or a key."""
    if not request.query.get("api-version"):
        return _azure_error(404, "404", "Resource not found")
    if not request.headers.get("api-key") and not request.headers.get("authorization"):
        return _azure_error(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
            "provide a valid key for an active subscription and use a correct regional API "
            "endpoint for your resource.",
        )
    return await read_json(request, need_model=False)


async def azure_chat(request: web.Request) -> web.StreamResponse:
    body = await _azure_body(request)
    if isinstance(body, web.Response):
        return body
    pieces = split_pieces(AZURE_TEXT)
    usage = chat_usage(prompt_tokens_for(text_chars(body.get("messages"))), len(pieces), _CTL.get())
    head = {"id": _id("chatcmpl-", 29), "created": int(time.time()), "model": AZURE_MODEL}
    if not body.get("stream"):
        message = {"role": "assistant", "content": "".join(pieces), "refusal": None}
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": "stop",
            "content_filter_results": FILTERS,
        }
        doc = {**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        doc.update(prompt_filter_results=PROMPT_FILTERS, system_fingerprint="fp_azure00")
        return json_response(doc)

    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await resp.prepare(request)
    # Azure's first event: no choices, empty head fields, the prompt's filter results.
    first = {"choices": [], "created": 0, "id": "", "model": "", "object": ""}
    await resp.write(sse({**first, "prompt_filter_results": PROMPT_FILTERS}))
    chunk_head = {**head, "object": "chat.completion.chunk", "system_fingerprint": "fp_azure00"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        choice.update(logprobs=None, content_filter_results={} if finish else FILTERS)
        return sse({**chunk_head, "choices": [choice], "usage": None})

    await resp.write(chunk({"role": "assistant", "content": "", "refusal": None}))
    for piece in pieces:
        await resp.write(chunk({"content": piece}))
    await resp.write(chunk({}, "stop"))
    if wants_usage(body, _CTL.get()):
        await resp.write(sse({**chunk_head, "choices": [], "usage": usage}))
    await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def azure_embeddings(request: web.Request) -> web.StreamResponse:
    body = await _azure_body(request)
    if isinstance(body, web.Response):
        return body
    raw = body.get("input")
    items = [raw] if isinstance(raw, str) else list(raw or [])
    data = [
        {"object": "embedding", "index": i, "embedding": [0.25, -0.5, 0.125]}
        for i in range(len(items))
    ]
    tokens = sum(prompt_tokens_for(len(str(x))) for x in items)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return json_response(
        {"object": "list", "data": data, "model": "text-embedding-3-small", "usage": usage}
    )


def add_azure_routes(app: web.Application) -> None:
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", azure_chat)
    app.router.add_post("/openai/deployments/{deployment}/embeddings", azure_embeddings)
