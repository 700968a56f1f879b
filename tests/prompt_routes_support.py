"""One gateway in front of every mock protocol (OpenAI, a second OpenAI host, Anthropic,
Ollama), with the prompts the prompt-route tests use already saved and labelled."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from conftest import LiveGateway, gateway_settings
from mock_anthropic import MockAnthropic
from mock_ollama import MockOllama
from mock_upstream import MockUpstream

REFRESH = 0.2
OTHER_KEY = "sk-other-server-key"
CLIENT_KEY = "sk-client-key"
CLAUDE = "claude-sonnet-4-6"
LLAMA = "llama3.2:latest"

SUMMARY = {
    "messages": [
        {"role": "system", "content": "Answer in {{language}}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "model": "gpt-4o-mini",
    "params": {"temperature": 0.2, "max_tokens": 50},
    "variables": {"language": "English", "text": None},
}
HELPER = {  # every variable has a default: usable as a virtual model
    "messages": [{"role": "system", "content": "You are {{persona}}."}],
    "model": "gpt-4o-mini",
    "params": {
        "temperature": 0.3,
        "max_tokens": 64,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object"}},
        },
    },
    "variables": {"persona": "a helpful assistant"},
}
PROMPTS: dict[str, list[dict[str, Any]]] = {
    "summary": [SUMMARY],
    "helper": [HELPER, {**HELPER, "messages": [{"role": "system", "content": "V2 {{persona}}"}]}],
    "claude-helper": [
        {
            "messages": [
                {"role": "system", "content": "Be brief, {{who}}."},
                {"role": "user", "content": "Context: {{who}} asks."},
            ],
            "model": CLAUDE,
            "params": {"max_tokens": 40, "temperature": 0.5, "stop": "END"},
            "variables": {"who": "friend"},
        }
    ],
    "llama-helper": [
        {
            "messages": [{"role": "system", "content": "Reply in {{lang}}."}],
            "model": LLAMA,
            "params": {
                "temperature": 0.1,
                "max_tokens": 20,
                "stop": "STOP",
                "seed": 3,
                "top_p": 0.8,
                "response_format": {"type": "json_object"},
            },
            "variables": {"lang": "French"},
        }
    ],
    "needs-topic": [
        {"messages": [{"role": "system", "content": "Talk about {{topic}}."}], "model": "m"}
    ],
    "elsewhere": [
        {
            "messages": [{"role": "system", "content": "Served elsewhere."}],
            "model": "gpt-4o-mini",
            "upstream": "other",
        }
    ],
    "claude-only": [
        {
            "messages": [{"role": "system", "content": "Claude."}],
            "model": CLAUDE,
            "upstream": "anthropic",
        }
    ],
    "ghost": [{"messages": [{"role": "system", "content": "x"}], "model": "m", "upstream": "nope"}],
}
STAGING = {"helper": 2}


@dataclass
class Mocks:
    openai: MockUpstream
    other: MockUpstream
    claude: MockAnthropic
    llama: MockOllama

    def reset(self) -> None:
        for m in (self.openai, self.other, self.claude, self.llama):
            m.reset()

    def count(self) -> int:
        return sum(len(m.requests) for m in (self.openai, self.other, self.claude, self.llama))


@contextlib.contextmanager
def running_mocks() -> Iterator[Mocks]:
    with (
        MockUpstream() as openai_mock,
        MockUpstream() as other,
        MockAnthropic() as claude,
        MockOllama() as llama,
    ):
        yield Mocks(openai_mock, other, claude, llama)


@contextlib.contextmanager
def prompt_gateway(home: Path, mocks: Mocks) -> Iterator[LiveGateway]:
    """A gateway (SQLite) routing to the mocks, with ``PROMPTS`` saved: version 1 of each
    labelled production, ``STAGING`` labelled staging; the cache reloaded after."""
    settings = gateway_settings(
        home,
        f"sqlite:///{home / 'prompts.db'}",
        mocks.openai.url,
        key_refresh_interval=REFRESH,
        upstreams={
            "anthropic": {"url": mocks.claude.base_url},
            "ollama": {"url": mocks.llama.base_url},
            "other": {"url": mocks.other.url, "api_key": OTHER_KEY},
        },
    )
    gw = LiveGateway(settings).start()
    try:
        for name, versions in PROMPTS.items():
            admin(gw, "POST", "/api/v1/prompts", {"name": name, "description": ""})
            for version in versions:
                admin(gw, "POST", f"/api/v1/prompts/{name}/versions", version)
            admin(gw, "PUT", f"/api/v1/prompts/{name}/labels/production", {"version": 1})
        for name, number in STAGING.items():
            admin(gw, "PUT", f"/api/v1/prompts/{name}/labels/staging", {"version": number})
        time.sleep(REFRESH * 3)  # every cache reload after the moves
        yield gw
    finally:
        gw.stop()


def admin(gw: LiveGateway, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {gw.org.admin_key}"}
    resp = httpx.request(method, gw.base_url + path, json=body, headers=headers, timeout=10)
    assert resp.status_code < 300, resp.text
    return resp


def new_id() -> str:
    return str(uuid.uuid4())


def wait_record(gw: LiveGateway, rid: str, timeout: float = 10.0) -> dict[str, Any]:
    """The stored record (with bodies) of request ``rid``."""
    deadline = time.monotonic() + timeout
    while True:
        resp = gw.api(f"/api/v1/requests/{rid}")
        if resp.status_code == 200:
            out: dict[str, Any] = resp.json()
            return out
        assert time.monotonic() < deadline, f"record {rid} not stored: {resp.text}"
        time.sleep(0.05)
