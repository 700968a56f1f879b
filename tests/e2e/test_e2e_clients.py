"""Every row of the README's client table, against `heliograph serve` configured by environment.

One server per configuration (`--workers 1`, `--workers 2`, and `--workers 2` on PostgreSQL),
each configured only with the variables the README documents: upstream URLs overridden to
byte-faithful mocks (OpenAI, Anthropic and Ollama at non-default addresses, Groq's preset,
Azure, a custom vLLM-like server), server-side provider keys, a GPU-hour price and a price
override. Each test drives the server with the real client package of its row and checks the
record the writer stored, read back through the API: provider, upstream, protocol, kind,
model, state, tokens, provider speed metrics, time to first token, cost, Helicone metadata,
and that no key (the client's, Heliograph's, the server's) is stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import orjson
import pytest
from e2e_harness import (
    Heliograph,
    admin_env,
    assert_never_stored,
    dashboard_login,
    genai_cost,
    marker,
    model_badges,
    new_id,
    received,
    stopping,
)

from conftest import create_pg_database, free_port
from mock_anthropic import DEFAULT_TEXT as CLAUDE_TEXT
from mock_anthropic import MockAnthropic
from mock_azure import AZURE_MODEL, AZURE_TEXT
from mock_ollama import DEFAULT_TEXT as OLLAMA_TEXT
from mock_ollama import MockOllama
from mock_upstream import DEFAULT_TEXT, MockUpstream, prompt_tokens_for, split_pieces

pytestmark = pytest.mark.slow

OPENAI_SERVER_KEY = "sk-proj-serverside-openai-e2e-0123456789abcdef"
ANTHROPIC_SERVER_KEY = "sk-ant-api03-serverside-e2e-0123456789abcdef"
OLLAMA_SERVER_KEY = "ollama-proxy-serverside-e2e-0123456789abcdef"
MYLLM_SERVER_KEY = "vllm-serverside-e2e-0123456789abcdef"
OPENAI_CLIENT_KEY = "sk-proj-client-e2e-0123456789abcdef"
ANTHROPIC_CLIENT_KEY = "sk-ant-api03-client-e2e-0123456789abcdef"
GROQ_CLIENT_KEY = "gsk_client_e2e_0123456789abcdef"
AZURE_CLIENT_KEY = "azure-client-e2e-0123456789abcdef"
SERVER_KEYS = (OPENAI_SERVER_KEY, ANTHROPIC_SERVER_KEY, OLLAMA_SERVER_KEY, MYLLM_SERVER_KEY)
CLAUDE = "claude-sonnet-4-6"
GROQ_MODEL = "llama-3.3-70b-versatile"
CUSTOM_MODEL = "ft:gpt-4o-mini:acme:e2e"
API_VERSION = "2024-10-21"
DEPLOYMENT = "prod-gpt4o"
GPU_USD_PER_HOUR = 3.6  # $0.000001 per millisecond of request time
# first token after 150 ms, then one every 20 ms (so the stream has a speed)
SLOW_STREAM = {"x-mock-first-token-delay-ms": "150", "x-mock-chunk-delay-ms": "20"}
STORED_BODY_CAP = 16_384  # HELIOGRAPH_MAX_STORED_BODY_BYTES, far above the other tests' bodies
ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "e2e correct horse battery"
PRICES = [{"model": "ft:gpt-4o-mini:acme:*", "input_per_mtok": 0.3, "output_per_mtok": 1.2}]


class Mocks:
    """The upstreams, started once for the module: one mock per declared upstream."""

    def __init__(self) -> None:
        self.openai = MockUpstream().start()
        self.groq = MockUpstream().start()
        self.azure = MockUpstream().start()
        self.myllm = MockUpstream().start()
        self.claude = MockAnthropic().start()
        self.llama = MockOllama().start()
        self.all = (self.openai, self.groq, self.azure, self.myllm, self.claude, self.llama)

    def environment(self) -> dict[str, str]:
        """Everything about the upstreams, as README's environment variables."""
        return {
            "HELIOGRAPH_UPSTREAM_OPENAI_URL": self.openai.url,
            "HELIOGRAPH_UPSTREAM_OPENAI_API_KEY": OPENAI_SERVER_KEY,
            "HELIOGRAPH_UPSTREAM_ANTHROPIC_URL": self.claude.base_url,
            "HELIOGRAPH_UPSTREAM_ANTHROPIC_API_KEY": ANTHROPIC_SERVER_KEY,
            # Ollama somewhere else than 127.0.0.1:11434, as in every Docker setup
            "HELIOGRAPH_UPSTREAM_OLLAMA_URL": self.llama.base_url,
            "HELIOGRAPH_UPSTREAM_OLLAMA_API_KEY": OLLAMA_SERVER_KEY,
            "HELIOGRAPH_UPSTREAM_GROQ_URL": self.groq.url,
            "HELIOGRAPH_UPSTREAM_AZURE_URL": self.azure.base_url,
            "HELIOGRAPH_UPSTREAM_MYLLM_URL": self.myllm.url,
            "HELIOGRAPH_UPSTREAM_MYLLM_PROTOCOL": "openai",
            "HELIOGRAPH_UPSTREAM_MYLLM_API_KEY": MYLLM_SERVER_KEY,
            "HELIOGRAPH_UPSTREAM_MYLLM_PROVIDER": "vllm",
            "HELIOGRAPH_UPSTREAM_MYLLM_GPU_USD_PER_HOUR": str(GPU_USD_PER_HOUR),
            "HELIOGRAPH_PRICES": orjson.dumps(PRICES).decode(),
            # The mocks all listen on 127.0.0.1: say which stand for cloud APIs and which
            # for a self-hosted server (Ollama is a known local server).
            "HELIOGRAPH_UPSTREAM_OPENAI_LOCAL": "false",
            "HELIOGRAPH_UPSTREAM_ANTHROPIC_LOCAL": "false",
            "HELIOGRAPH_UPSTREAM_GROQ_LOCAL": "false",
            "HELIOGRAPH_UPSTREAM_AZURE_LOCAL": "false",
            "HELIOGRAPH_UPSTREAM_MYLLM_LOCAL": "true",
            # custom upstreams speaking the other protocols (names with "_" become "-")
            "HELIOGRAPH_UPSTREAM_CLAUDE_PROXY_URL": self.claude.base_url,
            "HELIOGRAPH_UPSTREAM_CLAUDE_PROXY_PROTOCOL": "anthropic",
            "HELIOGRAPH_UPSTREAM_CLAUDE_PROXY_PROVIDER": "anthropic",
            "HELIOGRAPH_UPSTREAM_CLAUDE_PROXY_LOCAL": "false",
            "HELIOGRAPH_UPSTREAM_GPU_OLLAMA_URL": self.llama.base_url,
            "HELIOGRAPH_UPSTREAM_GPU_OLLAMA_PROTOCOL": "ollama",
            "HELIOGRAPH_UPSTREAM_GPU_OLLAMA_LOCAL": "true",
            # a model server on this machine with _LOCAL unset: counts as local by its address
            "HELIOGRAPH_UPSTREAM_LANLLM_URL": self.myllm.url,
            "HELIOGRAPH_UPSTREAM_BOXLLM_URL": self.myllm.url,
            "HELIOGRAPH_UPSTREAM_BOXLLM_LOCAL": "true",
            "HELIOGRAPH_MAX_STORED_BODY_BYTES": str(STORED_BODY_CAP),
            **admin_env(ADMIN_EMAIL, ADMIN_PASSWORD),
        }

    def stop(self) -> None:
        for mock in self.all:
            mock.stop()


@pytest.fixture(scope="module")
def mocks() -> Iterator[Mocks]:
    with stopping(Mocks()) as started:
        yield started


@pytest.fixture(scope="module", params=["workers=1", "workers=2", "workers=2,postgresql"], ids=str)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mocks: Mocks
) -> Iterator[Heliograph]:
    workers = 2 if "workers=2" in request.param else 1
    env = mocks.environment()
    drop = None
    if "postgresql" in request.param:
        url, drop = create_pg_database(request.getfixturevalue("pg_admin"))
        env["HELIOGRAPH_DATABASE_URL"] = url
    home = tmp_path_factory.mktemp("env-home")
    serve = Heliograph(home, free_port(), workers=workers, env=env)
    try:
        serve.start()
        if drop is not None:
            assert any("Store: postgresql" in line for line in serve.lines), serve.output()
        yield serve
    finally:
        serve.stop()
        if drop is not None:
            drop()


def helicone(rid: str, **extra: str) -> dict[str, str]:
    """Helicone's metadata headers (and the request id, so the test finds its record)."""
    return {
        "Helicone-Request-Id": rid,
        "Helicone-User-Id": "alice@example.com",
        "Helicone-Session-Id": "session-e2e",
        "Helicone-Session-Path": "/plan/step1",
        "Helicone-Session-Name": "E2E session",
        "Helicone-Property-Team": "search",
        **extra,
    }


def messages(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Say hello {text}"}]


def expected_prompt_tokens(text: str) -> int:
    """What the mocks report for ``messages(text)`` (tests/mock_upstream.py docstring)."""
    return prompt_tokens_for(len(f"Say hello {text}"))


def chat_and_stream(
    client: openai.OpenAI,
    model: str,
    plain: tuple[str, dict[str, str]],
    streamed: tuple[str, dict[str, str]],
) -> tuple[str | None, str]:
    """One chat call and one streamed call on ``client``, each (marker text, extra headers):
    the reply's text and the text the stream put together."""
    (text, headers), (stream_text, stream_headers) = plain, streamed
    reply = client.chat.completions.create(
        model=model, messages=messages(text), extra_headers=headers
    )
    stream = client.chat.completions.create(
        model=model, messages=messages(stream_text), stream=True, extra_headers=stream_headers
    )
    joined = "".join(ch.choices[0].delta.content or "" for ch in stream if ch.choices)
    return reply.choices[0].message.content, joined


def assert_row(row: dict[str, Any], **expected: Any) -> None:
    wrong = {k: (row.get(k), v) for k, v in expected.items() if row.get(k) != v}
    assert not wrong, f"stored != expected: {wrong}"


def assert_metadata(row: dict[str, Any]) -> None:
    assert_row(
        row,
        user_id="alice@example.com",
        session_id="session-e2e",
        session_path="/plan/step1",
        session_name="E2E session",
    )
    assert {k.lower(): v for k, v in row["properties"].items()} == {"team": "search"}


def assert_priced(row: dict[str, Any], model: str, provider: str) -> None:
    assert row["cost_known"] is True and row["cost_source"] == "genai-prices", row
    want = genai_cost(model, provider, row["prompt_tokens"], row["completion_tokens"])
    assert want > 0
    assert row["cost_usd"] == pytest.approx(want, abs=2e-9), (row["cost_usd"], want)


def assert_local_zero_cost(row: dict[str, Any]) -> None:
    assert row["cost_known"] is True and row["cost_usd"] == 0, row
    assert row["cost_source"] == "local"


def assert_stream_timing(row: dict[str, Any], at_least_ms: float = 0.0, speed: bool = True) -> None:
    """Time to first token, and (for a stream whose tokens came over time) tokens/s."""
    assert row["stream"] is True
    assert row["ttft_ms"] is not None, row
    assert at_least_ms <= row["ttft_ms"] <= row["latency_ms"], row
    if speed:
        assert row["output_tokens_per_s"] is not None and row["output_tokens_per_s"] > 0, row


# -- openai SDK --------------------------------------------------------------------------


def test_openai_sdk_chat(server: Heliograph, mocks: Mocks) -> None:
    """`OpenAI(base_url=".../v1/<write-key>", api_key="sk-...")`: the client's key goes upstream."""
    text, rid = marker(), new_id()
    with openai.OpenAI(
        base_url=server.url("v1"), api_key=OPENAI_CLIENT_KEY, max_retries=0
    ) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=messages(text), extra_headers=helicone(rid)
        )
        reply = raw.parse()
    assert reply.choices[0].message.content == DEFAULT_TEXT
    assert raw.headers["heliograph-id"] == rid == raw.headers["helicone-id"]
    for name in ("date", "server", "content-type"):  # one of each, not the upstream's and ours
        assert len(raw.headers.get_list(name)) <= 1, (name, raw.headers.get_list(name))
    got = received(mocks.openai, text)
    assert got.path == "/v1/chat/completions"
    assert got.headers["authorization"] == f"Bearer {OPENAI_CLIENT_KEY}"
    assert server.write_key not in orjson.dumps(got.to_dict()).decode()
    assert not any(name.startswith(("helicone-", "heliograph-")) for name in got.headers)

    row = server.record(rid)
    assert reply.usage is not None
    assert_row(
        row,
        provider="openai",
        upstream="openai",
        protocol="openai",
        kind="llm",
        endpoint="/chat/completions",
        model="gpt-4o-mini",
        response_model="gpt-4o-mini",
        stream=False,
        status=200,
        state="ok",
        prompt_tokens=reply.usage.prompt_tokens,
        completion_tokens=reply.usage.completion_tokens,
        tokens_estimated=False,
    )
    assert row["prompt_tokens"] == expected_prompt_tokens(text)
    assert row["completion_tokens"] == len(split_pieces(DEFAULT_TEXT))
    assert row["ttft_ms"] is None and row["latency_ms"] > 0
    assert_priced(row, "gpt-4o-mini", "openai")
    assert_metadata(row)
    assert row["response_body"]["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert row["request_body"]["messages"] == messages(text)
    assert row["request_headers"]["authorization"] == "[REDACTED]"
    assert_never_stored(row, OPENAI_CLIENT_KEY, server.write_key, *SERVER_KEYS)
    # the list API and its filters find the same record
    listed = server.listed(rid, provider="openai", user_id="alice@example.com")
    assert listed is not None and listed["cost_usd"] == row["cost_usd"]
    assert server.listed(rid, **{"property.team": "search", "session_id": "session-e2e"})


def test_openai_sdk_chat_stream(server: Heliograph, mocks: Mocks) -> None:
    """A stream without include_usage (as Open WebUI sends it): tokens still come out."""
    text, rid = marker(), new_id()
    with openai.OpenAI(
        base_url=server.url("v1"), api_key=OPENAI_CLIENT_KEY, max_retries=0
    ) as client:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages(text),
            stream=True,
            extra_headers={**helicone(rid), **SLOW_STREAM},
        )
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_TEXT
    assert all(c.usage is None for c in chunks)  # the injected usage chunk is hidden
    assert received(mocks.openai, text).json["stream_options"] == {"include_usage": True}

    row = server.record(rid)
    assert_row(
        row,
        provider="openai",
        upstream="openai",
        protocol="openai",
        kind="llm",
        model="gpt-4o-mini",
        status=200,
        state="ok",
        prompt_tokens=expected_prompt_tokens(text),
        completion_tokens=len(split_pieces(DEFAULT_TEXT)),
        tokens_estimated=False,
    )
    assert_stream_timing(row, at_least_ms=150)
    assert_priced(row, "gpt-4o-mini", "openai")
    assert_metadata(row)
    assert row["response_body"]["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert_never_stored(row, OPENAI_CLIENT_KEY, server.write_key, *SERVER_KEYS)


def test_openai_sdk_embeddings(server: Heliograph, mocks: Mocks) -> None:
    text, rid = marker(), new_id()
    with openai.OpenAI(
        base_url=server.url("v1"), api_key=OPENAI_CLIENT_KEY, max_retries=0
    ) as client:
        result = client.embeddings.create(
            model="text-embedding-3-small", input=f"embed {text}", extra_headers=helicone(rid)
        )
    assert len(result.data[0].embedding) == 8
    assert received(mocks.openai, text).path == "/v1/embeddings"
    row = server.record(rid)
    assert_row(
        row,
        provider="openai",
        upstream="openai",
        protocol="openai",
        kind="llm",
        endpoint="/embeddings",
        model="text-embedding-3-small",
        status=200,
        state="ok",
        prompt_tokens=result.usage.prompt_tokens,
    )
    assert row["completion_tokens"] in (0, None)
    assert_priced(row, "text-embedding-3-small", "openai")
    assert_metadata(row)
    assert_never_stored(row, OPENAI_CLIENT_KEY, server.write_key, *SERVER_KEYS)


def test_a_custom_price_from_heliograph_prices(server: Heliograph, mocks: Mocks) -> None:
    """HELIOGRAPH_PRICES (a JSON list) prices a fine-tuned model by its glob."""
    text, rid = marker(), new_id()
    with openai.OpenAI(
        base_url=server.url("v1"), api_key=OPENAI_CLIENT_KEY, max_retries=0
    ) as client:
        client.chat.completions.create(
            model=CUSTOM_MODEL, messages=messages(text), extra_headers={"Helicone-Request-Id": rid}
        )
    row = server.record(rid)
    assert row["model"] == CUSTOM_MODEL and row["state"] == "ok"
    assert row["cost_known"] is True and row["cost_source"] == "override", row
    want = (row["prompt_tokens"] * 0.3 + row["completion_tokens"] * 1.2) / 1e6
    assert row["prompt_tokens"] > 0 and row["cost_usd"] == pytest.approx(want, abs=2e-9)


def test_stored_bodies_are_capped_by_the_setting(server: Heliograph, mocks: Mocks) -> None:
    """HELIOGRAPH_MAX_STORED_BODY_BYTES reaches the writer (and its helper): a long prompt is
    forwarded whole, counted whole, and stored truncated and marked so."""
    text, rid = marker() + " " + "lorem ipsum " * 4000, new_id()  # about 48 KB
    with openai.OpenAI(
        base_url=server.url("v1"), api_key=OPENAI_CLIENT_KEY, max_retries=0
    ) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages(text), extra_headers={"Helicone-Request-Id": rid}
        )
    assert received(mocks.openai, text).json["messages"] == messages(text)
    row = server.record(rid)
    assert reply.usage is not None and row["state"] == "ok"
    assert row["prompt_tokens"] == reply.usage.prompt_tokens == expected_prompt_tokens(text)
    assert row["body_truncated"] is True
    stored = row["request_body"]
    assert isinstance(stored, str) and 0 < len(stored.encode()) <= STORED_BODY_CAP, len(stored)
    assert row["response_body"]["choices"][0]["message"]["content"] == DEFAULT_TEXT


def test_the_server_key_is_used_when_the_client_sends_the_heliograph_key(
    server: Heliograph, mocks: Mocks
) -> None:
    """HELIOGRAPH_UPSTREAM_OPENAI_API_KEY: the client's API key is the Heliograph key itself,
    with the key-less base URL; the server's key reaches OpenAI and is never stored."""
    text, rid = marker(), new_id()
    with openai.OpenAI(
        base_url=server.url("v1", key_in_path=False), api_key=server.write_key, max_retries=0
    ) as client:
        reply = client.chat.completions.create(
            model="gpt-4o-mini", messages=messages(text), extra_headers=helicone(rid)
        )
    assert reply.choices[0].message.content == DEFAULT_TEXT
    got = received(mocks.openai, text)
    assert got.headers["authorization"] == f"Bearer {OPENAI_SERVER_KEY}"
    assert server.write_key not in orjson.dumps(got.to_dict()).decode()
    row = server.record(rid)
    assert_row(row, provider="openai", upstream="openai", protocol="openai", state="ok")
    assert_priced(row, "gpt-4o-mini", "openai")
    assert_never_stored(row, server.write_key, *SERVER_KEYS)


@pytest.mark.parametrize("header", ["Heliograph-Auth", "Helicone-Auth"])
def test_the_key_in_a_header_with_key_less_base_urls(
    server: Heliograph, mocks: Mocks, header: str
) -> None:
    """`Heliograph-Auth` / `Helicone-Auth: Bearer <write-key>` with each key-less base URL,
    and the key-first OpenAI form `/<write-key>/v1`."""
    auth = {header: f"Bearer {server.write_key}"}
    ids: dict[str, str] = {}
    texts: dict[str, str] = {}

    texts["openai"], ids["openai"] = marker(), new_id()
    with openai.OpenAI(
        base_url=server.url("v1", key_in_path=False),
        api_key=OPENAI_CLIENT_KEY,
        default_headers=auth,
        max_retries=0,
    ) as client:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages(texts["openai"]),
            extra_headers={"Helicone-Request-Id": ids["openai"]},
        )
    texts["key-first"], ids["key-first"] = marker(), new_id()
    with openai.OpenAI(
        base_url=f"{server.base_url}/{server.write_key}/v1",
        api_key=OPENAI_CLIENT_KEY,
        max_retries=0,
    ) as client:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages(texts["key-first"]),
            extra_headers={"Helicone-Request-Id": ids["key-first"]},
        )
    texts["anthropic"], ids["anthropic"] = marker(), new_id()
    with anthropic.Anthropic(
        base_url=server.url("anthropic", key_in_path=False),
        api_key=ANTHROPIC_CLIENT_KEY,
        default_headers=auth,
        max_retries=0,
    ) as claude:
        claude.messages.create(
            model=CLAUDE,
            max_tokens=64,
            messages=messages(texts["anthropic"]),  # type: ignore[arg-type]
            extra_headers={"Helicone-Request-Id": ids["anthropic"]},
        )
    texts["ollama"], ids["ollama"] = marker(), new_id()
    with ollama.Client(
        host=server.url("ollama", key_in_path=False),
        headers={**auth, "Helicone-Request-Id": ids["ollama"]},
    ) as local:
        local.chat(model="llama3.2", messages=messages(texts["ollama"]))

    for name, upstream, mock in (
        ("openai", "openai", mocks.openai),
        ("key-first", "openai", mocks.openai),
        ("anthropic", "anthropic", mocks.claude),
        ("ollama", "ollama", mocks.llama),
    ):
        got = received(mock, texts[name])
        assert server.write_key not in orjson.dumps(got.to_dict()).decode(), name
        assert header.lower() not in got.headers, name
        row = server.record(ids[name])
        assert row["provider"] == upstream and row["state"] == "ok", (name, row)
        assert row["protocol"] == upstream, (name, row["protocol"])
        assert row["completion_tokens"] == 5, (name, row)
        assert_never_stored(row, server.write_key, OPENAI_CLIENT_KEY, ANTHROPIC_CLIENT_KEY)


# -- anthropic SDK -------------------------------------------------------------------------


def test_anthropic_sdk_message(server: Heliograph, mocks: Mocks) -> None:
    """`Anthropic(base_url=".../anthropic/<write-key>", api_key="sk-ant-...")`."""
    text, rid = marker(), new_id()
    with anthropic.Anthropic(
        base_url=server.url("anthropic"), api_key=ANTHROPIC_CLIENT_KEY, max_retries=0
    ) as client:
        raw = client.messages.with_raw_response.create(
            model=CLAUDE,
            max_tokens=100,
            messages=messages(text),  # type: ignore[arg-type]
            extra_headers=helicone(rid),
        )
        message = raw.parse()
    assert message.content[0].text == CLAUDE_TEXT  # type: ignore[union-attr]
    assert raw.headers["heliograph-id"] == rid
    got = received(mocks.claude, text)
    assert got.path == "/v1/messages"
    # the client's own key (the SDK sends it as a bearer token) passes through
    sent = got.headers.get("x-api-key") or got.headers.get("authorization", "")
    assert ANTHROPIC_CLIENT_KEY in sent and ANTHROPIC_SERVER_KEY not in str(got.headers)

    row = server.record(rid)
    assert_row(
        row,
        provider="anthropic",
        upstream="anthropic",
        protocol="anthropic",
        kind="llm",
        endpoint="/v1/messages",
        model=CLAUDE,
        stream=False,
        status=200,
        state="ok",
        prompt_tokens=message.usage.input_tokens,
        completion_tokens=message.usage.output_tokens,
        tokens_estimated=False,
    )
    assert row["prompt_tokens"] == expected_prompt_tokens(text)
    assert_priced(row, CLAUDE, "anthropic")
    assert_metadata(row)
    assert row["response_body"]["content"][0]["text"] == CLAUDE_TEXT
    assert_never_stored(row, ANTHROPIC_CLIENT_KEY, server.write_key, *SERVER_KEYS)


def test_anthropic_sdk_stream_with_the_server_key(server: Heliograph, mocks: Mocks) -> None:
    """The Heliograph key as the SDK's API key and HELIOGRAPH_UPSTREAM_ANTHROPIC_API_KEY set:
    the server's key goes to Anthropic as x-api-key."""
    text, rid = marker(), new_id()
    with (
        anthropic.Anthropic(
            base_url=server.url("anthropic", key_in_path=False),
            api_key=server.write_key,
            max_retries=0,
        ) as client,
        client.messages.stream(
            model=CLAUDE,
            max_tokens=100,
            messages=messages(text),  # type: ignore[arg-type]
            extra_headers={**helicone(rid), **SLOW_STREAM},
        ) as stream,
    ):
        final = stream.get_final_message()
    assert final.content[0].text == CLAUDE_TEXT  # type: ignore[union-attr]
    got = received(mocks.claude, text)
    assert got.headers.get("x-api-key") == ANTHROPIC_SERVER_KEY
    assert server.write_key not in orjson.dumps(got.to_dict()).decode()

    row = server.record(rid)
    assert_row(
        row,
        provider="anthropic",
        upstream="anthropic",
        protocol="anthropic",
        kind="llm",
        model=CLAUDE,
        status=200,
        state="ok",
        prompt_tokens=final.usage.input_tokens,
        completion_tokens=final.usage.output_tokens,
    )
    assert_stream_timing(row, at_least_ms=150)
    assert_priced(row, CLAUDE, "anthropic")
    assert_metadata(row)
    assert row["response_body"]["content"][0]["text"] == CLAUDE_TEXT
    assert_never_stored(row, server.write_key, *SERVER_KEYS)


# -- ollama SDK, Ollama at a non-default address ---------------------------------------------


def assert_ollama_row(row: dict[str, Any], endpoint: str, stream: bool) -> None:
    assert_row(
        row,
        provider="ollama",
        upstream="ollama",
        protocol="ollama",
        kind="llm",
        endpoint=endpoint,
        model="llama3.2",
        stream=stream,
        status=200,
        state="ok",
        tokens_estimated=False,
    )
    # The mock reports its durations in nanoseconds: 50 tokens/s generating, 500 tokens/s
    # reading the prompt, 20 ms loading (warm).
    assert row["output_tokens_per_s"] == 50.0, row
    assert row["prompt_tokens_per_s"] == 500.0, row
    assert_local_zero_cost(row)


def test_ollama_sdk_chat_and_generate(server: Heliograph, mocks: Mocks) -> None:
    """`OLLAMA_BASE_URL=.../ollama/<write-key>`, Ollama at HELIOGRAPH_UPSTREAM_OLLAMA_URL."""
    chat_text, chat_id = marker(), new_id()
    gen_text, gen_id = marker(), new_id()
    with ollama.Client(host=server.url("ollama"), headers=helicone(chat_id)) as client:
        reply = client.chat(model="llama3.2", messages=messages(chat_text))
    with ollama.Client(host=server.url("ollama"), headers=helicone(gen_id)) as client:
        generated = client.generate(model="llama3.2", prompt=f"Say hello {gen_text}")
    assert reply.message.content == OLLAMA_TEXT and generated.response == OLLAMA_TEXT
    chat_got = received(mocks.llama, chat_text)
    assert chat_got.path == "/api/chat"
    assert chat_got.headers.get("authorization") == f"Bearer {OLLAMA_SERVER_KEY}"
    assert received(mocks.llama, gen_text).path == "/api/generate"

    chat = server.record(chat_id)
    assert_ollama_row(chat, "/api/chat", stream=False)
    assert chat["prompt_tokens"] == reply.prompt_eval_count == expected_prompt_tokens(chat_text)
    assert chat["completion_tokens"] == reply.eval_count == 5
    assert chat["load_ms"] == 20.0 and chat["cold_start"] is False
    assert chat["response_body"]["message"]["content"] == OLLAMA_TEXT
    assert_metadata(chat)
    assert_never_stored(chat, server.write_key, *SERVER_KEYS)

    gen = server.record(gen_id)
    assert_ollama_row(gen, "/api/generate", stream=False)
    assert gen["prompt_tokens"] == generated.prompt_eval_count
    assert gen["completion_tokens"] == generated.eval_count == 5
    assert gen["load_ms"] == 20.0
    assert_never_stored(gen, server.write_key, *SERVER_KEYS)
    # the records are found by the protocol-aware filters too
    assert server.listed(chat_id, provider="ollama", model="llama3.2", kind="llm")


def test_ollama_sdk_streams_and_a_cold_model(server: Heliograph, mocks: Mocks) -> None:
    chat_text, chat_id = marker(), new_id()
    gen_text, gen_id = marker(), new_id()
    with ollama.Client(
        host=server.url("ollama"), headers={**helicone(chat_id), "x-mock-chunk-delay-ms": "20"}
    ) as client:
        parts = list(client.chat(model="llama3.2", messages=messages(chat_text), stream=True))
    assert "".join(p.message.content or "" for p in parts) == OLLAMA_TEXT
    with ollama.Client(
        host=server.url("ollama"), headers={**helicone(gen_id), "x-mock-cold-ms": "1200"}
    ) as client:
        pieces = list(client.generate(model="llama3.2", prompt=f"Hi {gen_text}", stream=True))
    assert "".join(p.response for p in pieces) == OLLAMA_TEXT

    chat = server.record(chat_id)
    assert_ollama_row(chat, "/api/chat", stream=True)
    assert chat["prompt_tokens"] == parts[-1].prompt_eval_count
    assert chat["completion_tokens"] == parts[-1].eval_count == 5
    assert chat["load_ms"] == 20.0 and chat["cold_start"] is False
    assert chat["ttft_ms"] is not None and 0 < chat["ttft_ms"] <= chat["latency_ms"]
    assert chat["response_body"]["message"]["content"] == OLLAMA_TEXT
    assert_metadata(chat)

    gen = server.record(gen_id)
    assert_ollama_row(gen, "/api/generate", stream=True)
    assert gen["completion_tokens"] == pieces[-1].eval_count == 5
    assert gen["load_ms"] == 1200.0 and gen["cold_start"] is True
    assert gen["ttft_ms"] is not None and 1200 <= gen["ttft_ms"] <= gen["latency_ms"]
    assert_never_stored(gen, server.write_key, *SERVER_KEYS)


def test_ollama_openai_endpoint(server: Heliograph, mocks: Mocks) -> None:
    """`base_url=".../ollama/<write-key>/v1"`: Ollama's OpenAI layer, recorded as Ollama."""
    text, rid = marker(), new_id()
    stream_text, stream_id = marker(), new_id()
    with openai.OpenAI(base_url=server.url("ollama") + "/v1", api_key="ollama", max_retries=0) as c:
        slow = {**helicone(stream_id), "x-mock-chunk-delay-ms": "20"}
        reply, streamed = chat_and_stream(c, "llama3.2", (text, helicone(rid)), (stream_text, slow))
    assert reply == OLLAMA_TEXT == streamed
    assert received(mocks.llama, text).path == "/v1/chat/completions"

    for row_id, stream_flag in ((rid, False), (stream_id, True)):
        row = server.record(row_id)
        assert_row(
            row,
            provider="ollama",
            upstream="ollama",
            protocol="openai",
            kind="llm",
            model="llama3.2",
            stream=stream_flag,
            status=200,
            state="ok",
            completion_tokens=5,
            tokens_estimated=False,
        )
        assert row["prompt_tokens"] == expected_prompt_tokens(text)
        assert_local_zero_cost(row)
        assert_metadata(row)
        if stream_flag:
            assert_stream_timing(row)
        assert_never_stored(row, server.write_key, *SERVER_KEYS)


# -- presets, Azure, a custom server ------------------------------------------------------------


def test_groq_preset_pointed_elsewhere(server: Heliograph, mocks: Mocks) -> None:
    """`base_url=".../groq/<write-key>"` with HELIOGRAPH_UPSTREAM_GROQ_URL overriding the preset."""
    text, rid = marker(), new_id()
    with openai.OpenAI(base_url=server.url("groq"), api_key=GROQ_CLIENT_KEY, max_retries=0) as c:
        reply = c.chat.completions.create(
            model=GROQ_MODEL, messages=messages(text), extra_headers=helicone(rid)
        )
    assert reply.choices[0].message.content == DEFAULT_TEXT
    got = received(mocks.groq, text)
    assert got.path == "/v1/chat/completions"
    assert got.headers["authorization"] == f"Bearer {GROQ_CLIENT_KEY}"
    assert not [r for r in mocks.openai.requests if text.encode() in r.body]
    row = server.record(rid)
    assert_row(
        row,
        provider="groq",
        upstream="groq",
        protocol="openai",
        kind="llm",
        model=GROQ_MODEL,
        status=200,
        state="ok",
        prompt_tokens=expected_prompt_tokens(text),
        completion_tokens=5,
    )
    assert_priced(row, GROQ_MODEL, "groq")
    assert_metadata(row)
    assert_never_stored(row, GROQ_CLIENT_KEY, server.write_key, *SERVER_KEYS)


def test_azure_openai_client(server: Heliograph, mocks: Mocks) -> None:
    """`AzureOpenAI(azure_endpoint=".../azure/<write-key>", api_version=..., api_key=...)`."""
    text, rid = marker(), new_id()
    stream_text, stream_id = marker(), new_id()
    with openai.AzureOpenAI(
        azure_endpoint=server.url("azure"),
        api_version=API_VERSION,
        api_key=AZURE_CLIENT_KEY,
        max_retries=0,
    ) as client:
        reply, streamed = chat_and_stream(
            client, DEPLOYMENT, (text, helicone(rid)), (stream_text, helicone(stream_id))
        )
    assert reply == AZURE_TEXT == streamed
    got = received(mocks.azure, text)
    assert got.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert got.query == f"api-version={API_VERSION}"
    assert got.headers["api-key"] == AZURE_CLIENT_KEY

    for row_id, stream_flag in ((rid, False), (stream_id, True)):
        row = server.record(row_id)
        assert_row(
            row,
            provider="azure",
            upstream="azure",
            protocol="openai",
            kind="llm",
            model=DEPLOYMENT,
            response_model=AZURE_MODEL,
            stream=stream_flag,
            status=200,
            state="ok",
            prompt_tokens=expected_prompt_tokens(text),
            completion_tokens=len(split_pieces(AZURE_TEXT)),
        )
        assert_priced(row, AZURE_MODEL, "azure")
        assert_metadata(row)
        assert row["request_headers"]["api-key"] == "[REDACTED]"
        if stream_flag:  # (the Azure mock sends its chunks at once: no speed to measure)
            assert_stream_timing(row, speed=False)
        assert_never_stored(row, AZURE_CLIENT_KEY, server.write_key, *SERVER_KEYS)


def test_custom_openai_compatible_server_with_a_gpu_hour_price(
    server: Heliograph, mocks: Mocks
) -> None:
    """HELIOGRAPH_UPSTREAM_MYLLM_URL/_API_KEY/_PROVIDER/_GPU_USD_PER_HOUR, client on
    `base_url=".../myllm"` with the Heliograph key as its API key."""
    text, rid = marker(), new_id()
    stream_text, stream_id = marker(), new_id()
    with openai.OpenAI(
        base_url=server.url("myllm", key_in_path=False), api_key=server.write_key, max_retries=0
    ) as client:
        reply, streamed = chat_and_stream(
            client,
            "Qwen/Qwen3-8B",
            (text, {**helicone(rid), "x-mock-delay-ms": "100"}),
            (stream_text, {**helicone(stream_id), **SLOW_STREAM}),
        )
    assert reply == DEFAULT_TEXT == streamed
    got = received(mocks.myllm, text)
    assert got.path == "/v1/chat/completions"
    assert got.headers["authorization"] == f"Bearer {MYLLM_SERVER_KEY}"
    assert server.write_key not in orjson.dumps(got.to_dict()).decode()

    for row_id, stream_flag in ((rid, False), (stream_id, True)):
        row = server.record(row_id)
        assert_row(
            row,
            provider="vllm",
            upstream="myllm",
            protocol="openai",
            kind="llm",
            model="Qwen/Qwen3-8B",
            stream=stream_flag,
            status=200,
            state="ok",
            prompt_tokens=expected_prompt_tokens(text),
            completion_tokens=5,
        )
        # $3.60 per GPU-hour is $0.000001 per millisecond of the request
        assert row["cost_known"] is True and row["cost_source"] == "gpu-hour", row
        assert row["latency_ms"] >= 100
        assert row["cost_usd"] > 0
        assert row["cost_usd"] == pytest.approx(row["latency_ms"] * 1e-6, rel=0.02)
        assert_metadata(row)
        if stream_flag:
            assert_stream_timing(row, at_least_ms=150)
        assert_never_stored(row, server.write_key, *SERVER_KEYS)


def test_only_a_declared_local_upstream_is_priced_at_zero(server: Heliograph, mocks: Mocks) -> None:
    """README: an address only makes the dashboard guess "local"; for pricing an upstream is
    local when declared (_LOCAL=true) or a known local server, else a model without a price is
    unknown - never a silent $0 (a private address may well be a proxy to a cloud API)."""
    rows = {}
    for name in ("lanllm", "boxllm"):
        text, rid = marker(), new_id()
        with openai.OpenAI(base_url=server.url(name), api_key="none", max_retries=0) as client:
            client.chat.completions.create(
                model="qwen2.5-72b-instruct",  # not served elsewhere: /models rows stay apart
                messages=messages(text),
                extra_headers={"Helicone-Request-Id": rid},
            )
        assert received(mocks.myllm, text).path == "/v1/chat/completions"
        rows[name] = server.record(rid)
        assert_row(rows[name], provider=name, upstream=name, protocol="openai", state="ok")
        assert rows[name]["completion_tokens"] == 5
    unset, declared = rows["lanllm"], rows["boxllm"]
    assert (unset["cost_known"], unset["cost_usd"]) == (False, None), unset
    assert (declared["cost_known"], declared["cost_usd"], declared["cost_source"]) == (
        True,
        0,
        "local",
    ), declared


def test_custom_upstreams_speaking_anthropic_and_ollama(server: Heliograph, mocks: Mocks) -> None:
    """HELIOGRAPH_UPSTREAM_<NAME>_PROTOCOL declares the wire protocol of a custom upstream."""
    claude_text, claude_id = marker(), new_id()
    llama_text, llama_id = marker(), new_id()
    with anthropic.Anthropic(
        base_url=server.url("claude-proxy"), api_key=ANTHROPIC_CLIENT_KEY, max_retries=0
    ) as client:
        message = client.messages.create(
            model=CLAUDE,
            max_tokens=100,
            messages=messages(claude_text),  # type: ignore[arg-type]
            extra_headers=helicone(claude_id),
        )
    with ollama.Client(host=server.url("gpu-ollama"), headers=helicone(llama_id)) as local:
        reply = local.chat(model="llama3.2", messages=messages(llama_text))
    assert received(mocks.claude, claude_text).path == "/v1/messages"
    assert received(mocks.llama, llama_text).path == "/api/chat"

    row = server.record(claude_id)
    assert_row(
        row,
        provider="anthropic",
        upstream="claude-proxy",
        protocol="anthropic",
        kind="llm",
        model=CLAUDE,
        state="ok",
        prompt_tokens=message.usage.input_tokens,
        completion_tokens=message.usage.output_tokens,
    )
    assert_priced(row, CLAUDE, "anthropic")
    assert_never_stored(row, ANTHROPIC_CLIENT_KEY, server.write_key, *SERVER_KEYS)

    row = server.record(llama_id)
    assert_row(
        row,
        provider="gpu-ollama",
        upstream="gpu-ollama",
        protocol="ollama",
        kind="llm",
        model="llama3.2",
        state="ok",
        prompt_tokens=reply.prompt_eval_count,
        completion_tokens=reply.eval_count,
        output_tokens_per_s=50.0,
        prompt_tokens_per_s=500.0,
        load_ms=20.0,
    )
    assert_local_zero_cost(row)
    assert_never_stored(row, server.write_key, *SERVER_KEYS)


# -- Open WebUI's connections, as it sends them ------------------------------------------------


def test_open_webui_connections(server: Heliograph, mocks: Mocks) -> None:
    """Open WebUI lists models, then streams a chat with its user headers (no `user`, no
    include_usage); its Ollama connection calls /api/tags and /api/version."""
    text, rid = marker(), new_id()
    webui = {
        "X-OpenWebUI-User-Name": "Alice%20Example",
        "X-OpenWebUI-User-Id": "webui-user-42",
        "X-OpenWebUI-User-Email": "alice@example.com",
        "X-OpenWebUI-User-Role": "user",
        "X-OpenWebUI-Chat-Id": "temporary:chat-e2e",
        "Authorization": f"Bearer {OPENAI_CLIENT_KEY}",
    }
    with httpx.Client(timeout=30) as http:
        models = http.get(server.url("v1") + "/models", headers=webui)
        assert models.status_code == 200
        assert models.headers["content-type"].startswith("application/json")
        assert "gpt-4o-mini" in [m["id"] for m in models.json()["data"]]
        with http.stream(
            "POST",
            server.url("v1") + "/chat/completions",
            json={"model": "gpt-4o-mini", "messages": messages(text), "stream": True},
            headers={**webui, "Helicone-Request-Id": rid, "x-mock-chunk-delay-ms": "20"},
        ) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            body = resp.read()
        events = [line[6:] for line in body.decode().splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        # the usage chunk Heliograph asked for is not shown to a client that did not ask
        assert all(orjson.loads(e).get("usage") is None for e in events[:-1])
        tags = http.get(server.url("ollama") + "/api/tags")
        version = http.get(server.url("ollama") + "/api/version")
    assert tags.status_code == 200 and tags.json()["models"]
    assert version.status_code == 200 and version.json()["version"]
    listing = server.record(tags.headers["heliograph-id"])
    assert_row(
        listing,
        provider="ollama",
        upstream="ollama",
        protocol="ollama",
        kind="other",
        method="GET",
        endpoint="/api/tags",
        status=200,
        state="ok",
    )

    row = server.record(rid)
    assert_row(
        row,
        provider="openai",
        protocol="openai",
        model="gpt-4o-mini",
        state="ok",
        user_id="webui-user-42",
        session_id="temporary:chat-e2e",
        completion_tokens=5,
        prompt_tokens=expected_prompt_tokens(text),
    )
    assert_stream_timing(row)
    assert_priced(row, "gpt-4o-mini", "openai")
    assert_never_stored(row, OPENAI_CLIENT_KEY, server.write_key, *SERVER_KEYS)


# -- the dashboard ---------------------------------------------------------------------------


def test_models_page_shows_declared_cloud_and_local_upstreams(
    server: Heliograph, mocks: Mocks
) -> None:
    """The login from HELIOGRAPH_ADMIN_EMAIL/_PASSWORD works; on /models a model is badged
    by its upstream's _LOCAL (every mock listens on 127.0.0.1)."""
    with openai.OpenAI(base_url=server.url("groq"), api_key=GROQ_CLIENT_KEY, max_retries=0) as c:
        c.chat.completions.create(model=GROQ_MODEL, messages=messages(marker()))
    with openai.OpenAI(
        base_url=server.url("myllm", key_in_path=False), api_key=server.write_key, max_retries=0
    ) as c:
        c.chat.completions.create(model="Qwen/Qwen3-8B", messages=messages(marker()))
    with ollama.Client(host=server.url("ollama")) as local:
        local.chat(model="llama3.2", messages=messages(marker()))
    expected = {GROQ_MODEL: "cloud", "Qwen/Qwen3-8B": "local", "llama3.2": "local"}
    with dashboard_login(server.base_url, ADMIN_EMAIL, ADMIN_PASSWORD) as web:
        badges = model_badges(web, set(expected))
    assert {m: badges.get(m) for m in expected} == expected, badges
