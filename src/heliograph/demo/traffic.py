"""Demo traffic: a varied stream of requests sent through the real gateway path.

Several cloud and local models, users, sessions with paths, properties, streams and not, tool
calls, errors and a cold local model, at a pace that fills every dashboard page in a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import aiohttp

log = logging.getLogger(__name__)
USERS = ("ada", "grace", "linus", "margaret", "alan", "barbara", "ken", "radia")
FEATURES = ("chat", "search", "summarize", "support")
QUESTIONS = (
    "What is the capital of France?",
    "Summarise this support ticket in one sentence.",
    "Write a haiku about observability.",
    "Which of these orders shipped late?",
    "Explain time to first token to a new engineer.",
)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_orders",
            "parameters": {"type": "object", "properties": {"query": {"type": "string"}}},
        },
    }
]


def _headers(rng: random.Random, key: str, step: int) -> dict[str, str]:
    user = rng.choice(USERS)
    session = f"demo-{user}-{step // 6}"
    return {
        "Heliograph-Auth": f"Bearer {key}",
        "Helicone-User-Id": user,
        "Helicone-Session-Id": session,
        "Helicone-Session-Name": f"{user}'s conversation",
        "Helicone-Session-Path": f"/conversation/turn-{step % 6}",
        "Helicone-Property-Feature": rng.choice(FEATURES),
        "Helicone-Property-Environment": rng.choice(("production", "production", "staging")),
    }


def scenario(rng: random.Random, key: str, step: int) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(path, JSON body, headers) of one request."""
    headers = _headers(rng, key, step)
    question = rng.choice(QUESTIONS)
    if rng.random() < 0.06:
        headers["x-sim-error"] = rng.choice(("500", "429", "503"))
    pick = rng.random()
    if pick < 0.45:
        model = rng.choice(("gpt-4o-mini", "gpt-4o-mini", "gpt-4o"))
        body: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": "You are helpful."},
                {"role": "user", "content": question},
            ],
            "stream": rng.random() < 0.6,
        }
        if rng.random() < 0.25:
            body["tools"] = TOOLS
        return "/v1/chat/completions", body, headers
    if pick < 0.7:
        body = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 256,
            "messages": [{"role": "user", "content": question}],
            "stream": rng.random() < 0.5,
        }
        return "/anthropic/v1/messages", body, {**headers, "anthropic-version": "2023-06-01"}
    model = rng.choice(("llama3.2", "qwen3:8b"))
    body = {
        "model": model,
        "messages": [{"role": "user", "content": question}],
        "stream": rng.random() < 0.8,
    }
    return "/ollama/api/chat", body, headers


async def run_traffic(base_url: str, key: str, stop: asyncio.Event, concurrency: int = 3) -> None:
    """Send demo requests until ``stop`` is set; failures are part of the show, not errors."""
    rng = random.Random()
    steps = iter(range(10**9))

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            path, body, headers = scenario(rng, key, next(steps))
            try:
                async with session.post(base_url + path, json=body, headers=headers) as resp:
                    await resp.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.debug("demo request failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(0.2, 1.2))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
