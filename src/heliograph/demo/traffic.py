"""Demo traffic: the clients of ``heliograph demo``, as scripts of requests, and a live driver.

Each session is one user's conversation through one client, written as a generator: it yields
the next :class:`Call` (a gateway path, a JSON body, the client's headers) and is sent back
what came of it (status and body), or yields a :class:`Pause` (the user reading and typing).
Each turn carries the previous ones, the assistant's answers and tool calls included, as the
real clients send them. The same scripts feed live traffic (:func:`run_traffic`, over HTTP
through the real gateway) and the backfilled week (:mod:`heliograph.demo.history`).

The clients: Open WebUI users (named, with their chat id and title/tags/follow-up tasks, on
cloud and local models), a support bot on the openai SDK with tools, a coding assistant on the
anthropic SDK, and a nightly digest job on a local model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from heliograph.demo import prompts
from heliograph.demo.answers import assistant_message

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Call:
    """One request as a client sends it; ``{key}`` in the path or a header value stands for
    the write key."""

    path: str
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...]
    protocol: str  # how to read the answer: openai, anthropic or ollama

    def url_path(self, key: str) -> str:
        return self.path.replace("{key}", key)

    def header_list(self, key: str) -> list[tuple[str, str]]:
        """The headers the client sends besides Host and Content-Length, in order."""
        return [(name, value.replace("{key}", key)) for name, value in self.headers]

    def payload(self) -> bytes:
        return orjson.dumps(self.body)


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float  # in the demo's own time; live traffic goes faster


Heard = tuple[int, bytes]  # what the client got: status and body
Session = Generator[Call | Pause, Heard | None, None]


@dataclass(frozen=True, slots=True)
class Person:
    """An Open WebUI user, as Open WebUI forwards them (ENABLE_FORWARD_USER_INFO_HEADERS)."""

    id: str
    name: str
    email: str
    role: str


OPENWEBUI_USERS = (
    Person("5b0e6a7e-3c1d-4c53-9a0e-0d1f6f2b8a11", "Ada Lovelace", "ada@example.com", "admin"),
    Person("9c41d2b0-7f55-4e0e-8a3b-63e2c1d4f702", "Grace Hopper", "grace@example.com", "user"),
    Person("e3f7a9c4-1b2d-4e6f-9a8b-7c6d5e4f3a29", "Alan Turing", "alan@example.com", "user"),
)
CUSTOMERS = tuple(f"cust-{n}" for n in (1042, 1187, 2210, 2398, 3051, 3377, 4120, 4466))
DEVELOPERS = ("ken", "radia", "barbara", "linus")
SDK_HEADERS = (("accept", "application/json"), ("accept-encoding", "gzip, deflate"))
OPENAI_SDK = (*SDK_HEADERS, ("content-type", "application/json"))
OPENWEBUI_CLIENT = (
    ("accept", "*/*"),
    ("accept-encoding", "gzip, deflate"),
    ("content-type", "application/json"),
    ("user-agent", "Python/3.11 aiohttp/3.12.15"),
)


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _exchange(
    rng: random.Random, call: Call
) -> Generator[Call | Pause, Heard | None, dict[str, Any] | None]:
    """Send a call; on a failure the user waits and tries once more. The assistant's message,
    or None when both failed."""
    for attempt in range(2):
        heard = yield call
        if heard is not None:
            message = assistant_message(call.protocol, *heard)
            if message is not None:
                return message
        if attempt == 0:
            yield Pause(rng.uniform(3.0, 25.0))
    return None


# -- Open WebUI ---------------------------------------------------------------------------------

OPENWEBUI_MODELS = (("gpt-4o-mini", 35), ("gpt-4o", 12), ("llama3.2", 25), ("qwen3:8b", 28))


def openwebui_chat(
    rng: random.Random, person: Person | None = None, model: str | None = None
) -> Session:
    """One Open WebUI chat: a few turns on one model, the title and tags tasks after the first
    answer, follow-up suggestions now and then."""
    person = person or rng.choice(OPENWEBUI_USERS)
    if model is None:
        names, weights = [m for m, _ in OPENWEBUI_MODELS], [w for _, w in OPENWEBUI_MODELS]
        model = rng.choices(names, weights)[0]
    local = model in ("llama3.2", "qwen3:8b")
    chat = _uuid(rng)
    identity = (
        ("x-openwebui-user-name", quote(person.name, safe=" ")),
        ("x-openwebui-user-id", person.id),
        ("x-openwebui-user-email", person.email),
        ("x-openwebui-user-role", person.role),
        ("x-openwebui-chat-id", chat),
    )
    auth: tuple[tuple[str, str], ...] = ()
    if local:  # Open WebUI's Ollama connection: the key in the base URL
        path, protocol = "/ollama/{key}/api/chat", "ollama"
    else:  # its OpenAI connection: the write key as the API key (Heliograph holds the real one)
        path, protocol = "/v1/chat/completions", "openai"
        auth = (("authorization", "Bearer {key}"),)

    def call(
        messages: list[dict[str, Any]], stream: bool, extra: tuple[tuple[str, str], ...]
    ) -> Call:
        body: dict[str, Any] = {"model": model, "messages": messages, "stream": stream}
        if local:
            body["options"] = {}
        return Call(path, body, (*OPENWEBUI_CLIENT, *auth, *identity, *extra), protocol)

    messages: list[dict[str, Any]] = []
    for turn in range(rng.randint(2, 6)):
        question = rng.choice(prompts.CHAT) if turn == 0 else rng.choice(prompts.FOLLOW_UPS)
        messages.append({"role": "user", "content": question})
        message_id = (("x-openwebui-message-id", _uuid(rng)),)
        answer = yield from _exchange(rng, call(list(messages), True, message_id))
        if answer is None:
            return
        messages.append({"role": "assistant", "content": answer.get("content") or ""})
        tasks = ["title_generation", "tags_generation"] if turn == 0 else []
        if rng.random() < 0.3:
            tasks.append("follow_up_generation")
        for task in tasks:
            task_prompt = prompts.openwebui_task(task, messages)
            task_call = call(
                [{"role": "user", "content": task_prompt}], False, (("x-openwebui-task", task),)
            )
            yield from _exchange(rng, task_call)
        yield Pause(rng.uniform(25.0, 240.0))


# -- a support bot on the openai SDK, with tools ------------------------------------------------


def support_chat(rng: random.Random, user: str | None = None, model: str | None = None) -> Session:
    """A customer talks to the support bot: the model may call a tool, the bot runs it and
    sends the result back in the next request."""
    user = user or rng.choice(CUSTOMERS)
    model = model or rng.choices(("gpt-4o-mini", "gpt-4o"), (80, 20))[0]
    stream = rng.random() < 0.7
    session = _uuid(rng)
    topic = rng.choice(prompts.SUPPORT)
    environment = "production" if rng.random() < 0.9 else "staging"
    headers = (
        *OPENAI_SDK,
        ("user-agent", "OpenAI/Python 1.99.9"),
        ("authorization", "Bearer sk-simulated-provider-key"),
        ("helicone-user-id", user),
        ("helicone-session-id", session),
        ("helicone-session-name", f"Support: {topic[:40]}"),
        ("helicone-property-app", "support-bot"),
        ("helicone-property-environment", environment),
    )
    messages: list[dict[str, Any]] = [{"role": "system", "content": prompts.SUPPORT_SYSTEM}]

    def call(step: str) -> Call:
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "tools": list(prompts.SUPPORT_TOOLS),
            "stream": stream,
        }
        path_header = (("helicone-session-path", f"/support/{step}"),)
        return Call("/v1/{key}/chat/completions", body, (*headers, *path_header), "openai")

    for turn in range(rng.randint(3, 6)):
        question = topic if turn == 0 else rng.choice(prompts.SUPPORT_FOLLOW_UPS)
        messages.append({"role": "user", "content": question})
        answer = yield from _exchange(rng, call(f"turn-{turn + 1}"))
        if answer is None:
            return
        messages.append(answer)
        for tool_call in answer.get("tool_calls") or []:
            messages.append(prompts.tool_result(rng, tool_call))
        if answer.get("tool_calls"):
            answer = yield from _exchange(rng, call(f"turn-{turn + 1}/tool-result"))
            if answer is None:
                return
            messages.append(answer)
        yield Pause(rng.uniform(20.0, 150.0))


# -- a coding assistant on the anthropic SDK ----------------------------------------------------


def coding_session(rng: random.Random, user: str | None = None) -> Session:
    user = user or rng.choice(DEVELOPERS)
    session = _uuid(rng)
    task = rng.choice(prompts.CODE)
    headers = (
        *SDK_HEADERS,
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
        ("user-agent", "Anthropic/Python 0.64.0"),
        ("x-api-key", "sk-ant-simulated-provider-key"),
        ("helicone-user-id", user),
        ("helicone-session-id", session),
        ("helicone-session-name", f"Code: {task[:40]}"),
        ("helicone-property-app", "code-assistant"),
    )
    stream = rng.random() < 0.8
    messages: list[dict[str, Any]] = []
    for turn in range(rng.randint(3, 8)):
        messages.append(
            {"role": "user", "content": task if turn == 0 else rng.choice(prompts.CODE_FOLLOW_UPS)}
        )
        body: dict[str, Any] = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 1024,
            "system": prompts.CODE_SYSTEM,
            "messages": list(messages),
            "stream": stream,
        }
        path_header = (("helicone-session-path", f"/code/turn-{turn + 1}"),)
        call = Call("/anthropic/{key}/v1/messages", body, (*headers, *path_header), "anthropic")
        answer = yield from _exchange(rng, call)
        if answer is None:
            return
        messages.append(answer)
        yield Pause(rng.uniform(30.0, 300.0))


# -- a nightly job on a local model --------------------------------------------------------------


def nightly_digest(rng: random.Random, night: str) -> Session:
    """The digest job summarises the day's documents with a local model, one after another."""
    headers = (
        *SDK_HEADERS,
        ("content-type", "application/json"),
        ("user-agent", "ollama-python/0.5.3"),
        ("helicone-user-id", "nightly-digest"),
        ("helicone-session-id", f"digest-{night}"),
        ("helicone-session-name", f"Nightly digest {night}"),
        ("helicone-property-app", "digest"),
    )
    for n in range(rng.randint(14, 22)):
        body: dict[str, Any] = {
            "model": "qwen3:8b",
            "messages": [
                {"role": "system", "content": "Summarise the document in three sentences."},
                {"role": "user", "content": prompts.document(rng)},
            ],
            "stream": False,
        }
        path_header = (("helicone-session-path", f"/digest/doc-{n + 1}"),)
        yield from _exchange(
            rng, Call("/ollama/{key}/api/chat", body, (*headers, *path_header), "ollama")
        )
        yield Pause(rng.uniform(1.0, 4.0))


def new_session(rng: random.Random) -> Session:
    """A session of one of the interactive clients, as often as each is used."""
    pick = rng.random()
    if pick < 0.45:
        return openwebui_chat(rng)
    if pick < 0.78:
        return support_chat(rng)
    return coding_session(rng)


# -- live ---------------------------------------------------------------------------------------

LIVE_PACE = 0.06  # live pauses are this share of a user's (a demo should move)
LIVE_PAUSE_MAX = 12.0


def first_sessions(rng: random.Random) -> list[Session]:
    """One session of each client (a local model for Open WebUI), so every page fills in the
    first minute."""
    return [
        openwebui_chat(rng, model="llama3.2"),
        support_chat(rng, model="gpt-4o-mini"),
        coding_session(rng),
    ]


async def run_traffic(base_url: str, key: str, stop: asyncio.Event) -> None:
    """Run sessions through the gateway at ``base_url`` until ``stop`` is set, one per client
    at a time; failures are part of the show, not errors."""
    rng = random.Random()

    async def pause(seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async def runner(http: aiohttp.ClientSession, session: Session) -> None:
        while not stop.is_set():
            try:
                step = next(session)
                while not stop.is_set():
                    if isinstance(step, Pause):
                        await pause(min(step.seconds * LIVE_PACE, LIVE_PAUSE_MAX))
                        step = session.send(None)
                    else:
                        step = session.send(await send(http, base_url, key, step))
            except StopIteration:
                pass
            await pause(rng.uniform(2.0, 12.0))
            session = new_session(rng)

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        await asyncio.gather(*(runner(http, first) for first in first_sessions(rng)))


async def send(http: aiohttp.ClientSession, base_url: str, key: str, call: Call) -> Heard:
    """Send one call as its client would; a connection failure is heard as status 0."""
    try:
        async with http.post(
            base_url + call.url_path(key), data=call.payload(), headers=call.header_list(key)
        ) as resp:
            return resp.status, await resp.read()
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.debug("demo request failed: %s", exc)
        return 0, b""
