"""A simulated upstream for ``heliograph demo``: OpenAI, Anthropic and Ollama wire formats.

It answers like the real providers (streams and not, usage, tool calls, errors, a cold local
model) with made-up text, so a newcomer can see Heliograph work without an API key. Nothing
it says is real, and the dashboard says so. Behaviour is chosen by the request: the model
name picks the speed; ``x-sim-error: <status>`` fails; tools in a chat request get a tool call.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

REPLIES = (
    "Sure! Here is a short answer based on what you asked.",
    "The capital of France is Paris, which is also its largest city.",
    "Let me think step by step. First, we list the facts; then we compare them.",
    "Heliograph records every request so you can see cost, latency and tokens in one place.",
    "I would suggest caching repeated prompts and streaming long answers.",
)
# Generation speed (tokens/s) and time to first token (ms) per model family.
SPEEDS = {
    "gpt-4o-mini": (90, 250),
    "gpt-4o": (60, 400),
    "claude": (55, 500),
    "llama": (35, 120),
    "qwen": (28, 150),
}


def _speed(model: str) -> tuple[float, float]:
    for prefix, value in SPEEDS.items():
        if model.startswith(prefix):
            return value
    return (50, 300)


def _words(rng: random.Random) -> list[str]:
    text = rng.choice(REPLIES)
    parts = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(parts)]


def _prompt_tokens(body: dict[str, Any]) -> int:
    return max(5, len(json.dumps(body.get("messages") or body.get("prompt") or "")) // 4)


@dataclass
class Simulator:
    """The simulated provider; ``cold`` lists local models not loaded yet."""

    rng: random.Random = field(default_factory=random.Random)
    cold: set[str] = field(default_factory=lambda: {"llama3.2", "qwen3:8b"})

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors])
        app.router.add_get("/openai/v1/models", self.models)
        app.router.add_post("/openai/v1/chat/completions", self.openai_chat)
        app.router.add_post("/anthropic/v1/messages", self.anthropic)
        app.router.add_post("/ollama/api/chat", self.ollama_chat)
        app.router.add_get("/ollama/api/tags", self.ollama_tags)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        status = request.headers.get("x-sim-error")
        if status and status.isdigit():
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))
            code = int(status)
            if request.path.startswith("/anthropic"):
                kind = (
                    "overloaded_error"
                    if code == 529
                    else "rate_limit_error"
                    if code == 429
                    else "api_error"
                )
                return web.json_response(
                    {"type": "error", "error": {"type": kind, "message": "Simulated failure"}},
                    status=code,
                )
            if request.path.startswith("/ollama"):
                return web.json_response({"error": "simulated failure"}, status=code)
            return web.json_response(
                {
                    "error": {
                        "message": "Simulated failure",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
                status=code,
            )
        result: web.StreamResponse = await handler(request)
        return result

    async def models(self, request: web.Request) -> web.Response:
        ids = ["gpt-4o-mini", "gpt-4o"]
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": i, "object": "model", "created": 0, "owned_by": "simulated"} for i in ids
                ],
            }
        )

    async def openai_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", "gpt-4o-mini"))
        speed, ttft = _speed(model)
        words = _words(self.rng)
        cid = f"chatcmpl-sim{uuid.uuid4().hex[:20]}"
        created = int(time.time())
        prompt = _prompt_tokens(body)
        tool = body.get("tools") and self.rng.random() < 0.7
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": len(words),
            "total_tokens": prompt + len(words),
        }
        if not body.get("stream"):
            await asyncio.sleep((ttft + len(words) * 1000 / speed) / 1000)
            message: dict[str, Any] = {
                "role": "assistant",
                "content": "".join(words),
                "refusal": None,
            }
            finish = "stop"
            if tool:
                message = {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [self._tool_call(body)],
                }
                finish = "tool_calls"
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                    ],
                    "usage": usage,
                    "system_fingerprint": "fp_simulated",
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def emit(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_simulated",
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")

        await emit({"role": "assistant", "content": ""})
        await asyncio.sleep(ttft / 1000)
        if tool:
            call = self._tool_call(body)
            await emit(
                {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": call["function"]["name"], "arguments": ""},
                        }
                    ]
                }
            )
            for piece in (call["function"]["arguments"][:12], call["function"]["arguments"][12:]):
                await asyncio.sleep(1 / speed)
                await emit({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            await emit({}, "tool_calls")
        else:
            for word in words:
                await emit({"content": word})
                await asyncio.sleep(1 / speed)
            await emit({}, "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            tail = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(b"data: " + json.dumps(tail).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def _tool_call(self, body: dict[str, Any]) -> dict[str, Any]:
        tools = body.get("tools") or [{}]
        name = ((tools[0] or {}).get("function") or {}).get("name", "lookup")
        args = json.dumps(
            {"query": self.rng.choice(["Paris weather", "order 1234", "top stories"])}
        )
        return {
            "id": f"call_{uuid.uuid4().hex[:12]}",
            "type": "function",
            "function": {"name": name, "arguments": args},
        }

    async def anthropic(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", "claude-sonnet-4-6"))
        speed, ttft = _speed("claude")
        words = _words(self.rng)
        mid = f"msg_sim{uuid.uuid4().hex[:20]}"
        prompt = _prompt_tokens(body)
        cached = self.rng.choice([0, 0, prompt // 2])
        usage = {
            "input_tokens": prompt - cached,
            "output_tokens": len(words),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        }
        if not body.get("stream"):
            await asyncio.sleep((ttft + len(words) * 1000 / speed) / 1000)
            return web.json_response(
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [{"type": "text", "text": "".join(words)}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def event(name: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())

        start: dict[str, Any] = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {**usage, "output_tokens": 1},
        }
        await event("message_start", {"type": "message_start", "message": start})
        await event(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        await asyncio.sleep(ttft / 1000)
        for word in words:
            await event(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word},
                },
            )
            await asyncio.sleep(1 / speed)
        await event("content_block_stop", {"type": "content_block_stop", "index": 0})
        await event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": len(words)},
            },
        )
        await event("message_stop", {"type": "message_stop"})
        await resp.write_eof()
        return resp

    async def ollama_tags(self, request: web.Request) -> web.Response:
        models = [
            {
                "name": f"{m}:latest",
                "model": f"{m}:latest",
                "modified_at": "2026-11-01T00:00:00Z",
                "size": 2019393189,
                "digest": "0" * 64,
                "details": {
                    "format": "gguf",
                    "family": "llama",
                    "parameter_size": "3B",
                    "quantization_level": "Q4_K_M",
                },
            }
            for m in ("llama3.2", "qwen3:8b")
        ]
        return web.json_response({"models": models})

    async def ollama_chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", "llama3.2"))
        speed, ttft = _speed(model)
        load_ms = 0.0
        if model in self.cold:  # the first call loads the model: slow, and it shows
            self.cold.discard(model)
            load_ms = self.rng.uniform(2500, 4000)
        await asyncio.sleep((load_ms + ttft) / 1000)
        words = _words(self.rng)
        prompt = _prompt_tokens(body)
        final = {
            "model": model,
            "created_at": "2026-11-28T00:00:00Z",
            "message": {"role": "assistant", "content": ""},
            "done_reason": "stop",
            "done": True,
            "total_duration": int((load_ms + ttft) * 1e6 + len(words) / speed * 1e9),
            "load_duration": int(load_ms * 1e6) or 20_000_000,
            "prompt_eval_count": prompt,
            "prompt_eval_duration": int(prompt / 400 * 1e9),
            "eval_count": len(words),
            "eval_duration": int(len(words) / speed * 1e9),
        }
        if body.get("stream") is False:
            await asyncio.sleep(len(words) / speed)
            final["message"]["content"] = "".join(words)  # type: ignore[index]
            return web.json_response(final)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for word in words:
            line = {
                "model": model,
                "created_at": "2026-11-28T00:00:00Z",
                "message": {"role": "assistant", "content": word},
                "done": False,
            }
            await resp.write(json.dumps(line).encode() + b"\n")
            await asyncio.sleep(1 / speed)
        await resp.write(json.dumps(final).encode() + b"\n")
        await resp.write_eof()
        return resp


async def start_simulator(host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the simulator; returns the runner (to stop it) and the bound port."""
    runner = web.AppRunner(Simulator().app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    addresses = runner.addresses
    bound = addresses[0][1] if addresses else port
    return runner, int(bound)


def demo_upstreams(base_url: str) -> dict[str, dict[str, Any]]:
    """The upstreams ``heliograph demo`` declares for a simulator at ``base_url``.

    Each says whether it stands for a cloud API or a local server: the simulator listens on
    127.0.0.1, so the address-based guess would badge the simulated OpenAI and Anthropic
    models as local.
    """
    return {
        "openai": {"url": f"{base_url}/openai/v1", "local": False},
        "anthropic": {"url": f"{base_url}/anthropic", "protocol": "anthropic", "local": False},
        "ollama": {"url": f"{base_url}/ollama", "protocol": "ollama", "local": True},
    }
