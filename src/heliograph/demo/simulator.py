"""A simulated upstream for ``heliograph demo``: OpenAI, Anthropic and Ollama wire formats.

It answers like the real providers (streams and not, usage, tool calls, Open WebUI's title and
tags tasks, a few errors, a cold local model, a model that slows down over the week) with
made-up text, so a newcomer can see Heliograph work without an API key. Nothing it says is
real, and the dashboard says so.

:meth:`Simulator.reply` decides a whole answer at once - its bytes and when each piece leaves
(:mod:`heliograph.demo.wire`) - from the request and the time it arrived. Served over HTTP,
the pieces are sent at their times; the demo's backfilled week uses the same replies at past
times without waiting (:mod:`heliograph.demo.history`).
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from heliograph.demo import wire
from heliograph.demo.models import WEEK_S, Conditions, Model, model
from heliograph.demo.text import answer_words, task_answer

ERRORS = {  # upstream -> chance that a request fails
    "openai": 0.025,
    "anthropic": 0.03,
    "ollama": 0.012,
}


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _prompt_tokens(body: bytes) -> int:
    """About four bytes of the request per token (its JSON frame is a few tokens' worth)."""
    return max(5, (len(body) - 40) // 4)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


@dataclass
class Simulator:
    """The simulated providers; ``conditions`` carries what changes over time, ``errors`` the
    chance that a request to each upstream fails."""

    rng: random.Random = field(default_factory=random.Random)
    conditions: Conditions = field(default_factory=lambda: Conditions(time.time() - WEEK_S))
    errors: dict[str, float] = field(default_factory=lambda: dict(ERRORS))

    # -- deciding an answer ----------------------------------------------------------------
    def reply(self, method: str, path: str, body: bytes, now: float) -> wire.Reply:
        """The whole answer to one request arriving at ``now`` (Unix seconds)."""
        if method == "GET" and path == "/openai/v1/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "simulated"}
                for m in ("gpt-4o-mini", "gpt-4o")
            ]
            return wire.plain_json({"object": "list", "data": data})
        if method == "GET" and path == "/ollama/api/tags":
            return wire.plain_json({"models": [_ollama_tag(n) for n in ("llama3.2", "qwen3:8b")]})
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = None
        if method != "POST" or not isinstance(doc, dict):
            return wire.not_found()
        if path == "/openai/v1/chat/completions":
            return self._chat("openai", doc, _prompt_tokens(body), now)
        if path == "/anthropic/v1/messages":
            return self._chat("anthropic", doc, _prompt_tokens(body), now)
        if path == "/ollama/api/chat":
            return self._chat("ollama", doc, _prompt_tokens(body), now)
        return wire.not_found()

    def _chat(self, protocol: str, doc: dict[str, Any], prompt: int, now: float) -> wire.Reply:
        rng = self.rng
        m = model(str(doc.get("model") or "gpt-4o-mini"))
        stream = doc.get("stream", protocol == "ollama") is True
        if rng.random() < self.errors.get(protocol, 0.0):
            return self._error(protocol, m, rng.uniform(40.0, 400.0))
        turn = self._turn(m, doc, prompt, now)
        self.conditions.used(m, now + turn.done_ms / 1000)
        if protocol == "anthropic":
            return wire.anthropic_reply(turn, f"msg_{_hex(rng, 24)}", stream)
        if protocol == "ollama":
            return wire.ollama_reply(turn, now, stream)
        usage = bool((doc.get("stream_options") or {}).get("include_usage"))
        return wire.openai_reply(turn, f"chatcmpl-{_hex(rng, 29)}", int(now), stream, usage)

    def _turn(self, m: Model, doc: dict[str, Any], prompt: int, now: float) -> wire.Turn:
        """What the model says to this request and when each token is ready."""
        rng, cond = self.rng, self.conditions
        messages = [x for x in doc.get("messages") or [] if isinstance(x, dict)]
        last = messages[-1] if messages else {}
        tool = None
        task = task_answer(_text(last.get("content")), rng) if last.get("role") == "user" else None
        if task is not None:
            words = task
        elif doc.get("tools") and last.get("role") == "user" and rng.random() < 0.7:
            tool = _tool_call(rng, doc["tools"], _text(last.get("content")))
            words = [tool.arguments[i : i + 8] for i in range(0, len(tool.arguments), 8)]
        else:
            after_tool = last.get("role") == "tool"
            limit = doc.get("max_tokens") or doc.get("max_completion_tokens")
            words = answer_words(rng, after_tool, limit if isinstance(limit, int) else None)
        token_ms = 1000.0 / cond.speed(m, now, rng)
        load = cond.load(m, now, rng)
        prompt_ms = prompt / m.prompt_tokens_per_s * 1000.0
        first = load + prompt_ms + m.ttft_ms * cond.slowdown(m, now) * rng.uniform(0.7, 1.6)
        times = []
        at = first
        for _ in words:
            times.append(at)
            at += token_ms * rng.uniform(0.75, 1.25)
        cached = 0
        if len(messages) > 2 and rng.random() < 0.6:
            cached = int(prompt * 0.7)
        return wire.Turn(
            model=m.name,
            prompt_tokens=prompt,
            pieces=words,
            times=times,
            tool=tool,
            token_ms=token_ms,
            load_ms=load,
            prompt_ms=prompt_ms,
            cached_tokens=cached,
        )

    def _error(self, protocol: str, m: Model, at: float) -> wire.Reply:
        if protocol == "anthropic":
            return wire.anthropic_error(529, "overloaded_error", "Overloaded", at)
        if protocol == "ollama":
            return wire.ollama_error(500, "llama runner process has terminated: signal: killed", at)
        if self.rng.random() < 0.7:
            message = (
                f"Rate limit reached for {m.name} in organization org-simulated on tokens per "
                "min (TPM): Limit 200000, Used 199480, Requested 1210. Please try again in 207ms."
            )
            return wire.openai_error(429, message, "tokens", "rate_limit_exceeded", at)
        message = "The server had an error while processing your request. Sorry about that!"
        return wire.openai_error(500, message, "server_error", None, at)

    # -- serving over HTTP -----------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        return app

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        arrived = loop.time()
        body = await request.read()
        reply = self.reply(request.method, request.path, body, time.time())

        async def at(ms: float) -> None:
            delay = arrived + ms / 1000 - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)

        headers = {"Content-Type": reply.content_type}
        if not reply.stream:
            await at(reply.done_ms)
            return web.Response(status=reply.status, body=reply.body, headers=headers)
        resp = web.StreamResponse(status=reply.status, headers=headers)
        await at(reply.headers_ms)
        await resp.prepare(request)
        for ms, data in reply.parts:
            await at(ms)
            await resp.write(data)
        await resp.write_eof()
        return resp


def _tool_call(rng: random.Random, tools: list[Any], question: str) -> wire.ToolCall:
    """A call of the tool the question is about (else the first), with plausible arguments."""
    functions: list[dict[str, Any]] = [
        t["function"] for t in tools if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    lowered = question.lower()
    chosen: dict[str, Any] = functions[0] if functions else {"name": "lookup"}
    for function in functions:
        topic = str(function.get("name", "")).split("_")[-1].rstrip("s")
        if topic and topic in lowered:
            chosen = function
            break
    properties = (chosen.get("parameters") or {}).get("properties") or {"query": {}}
    args: dict[str, Any] = {}
    for name in properties:
        if "order" in name:
            args[name] = f"A-{rng.randint(1000, 9999)}"
        elif "city" in name:
            args[name] = rng.choice(("Paris", "Lisbon", "Osaka", "Nairobi"))
        else:
            args[name] = question[:60]
    return wire.ToolCall(
        f"call_{_hex(rng, 24)}", str(chosen.get("name")), orjson.dumps(args).decode()
    )


def _ollama_tag(name: str) -> dict[str, Any]:
    return {
        "name": f"{name}:latest" if ":" not in name else name,
        "model": f"{name}:latest" if ":" not in name else name,
        "modified_at": "2026-11-01T00:00:00Z",
        "size": 2019393189,
        "digest": "0" * 64,
        "details": {
            "format": "gguf",
            "family": "llama" if name.startswith("llama") else "qwen3",
            "parameter_size": "3B" if name.startswith("llama") else "8B",
            "quantization_level": "Q4_K_M",
        },
    }


async def start_simulator(
    host: str, port: int, simulator: Simulator | None = None
) -> tuple[web.AppRunner, int]:
    """Serve the simulator; returns the runner (to stop it) and the bound port."""
    runner = web.AppRunner((simulator or Simulator()).app(), access_log=None)
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
