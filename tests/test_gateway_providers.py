"""Every provider in one view: Anthropic, Ollama (native and /v1) and a custom upstream,
through the gateway with the real client packages, to byte-faithful mocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import ollama
import openai
import pytest

from conftest import LiveGateway, gateway_settings
from mock_anthropic import DEFAULT_TEXT as CLAUDE_TEXT
from mock_anthropic import TOOL_INPUT, MockAnthropic
from mock_ollama import DEFAULT_TEXT as OLLAMA_TEXT
from mock_ollama import MockOllama
from mock_upstream import DEFAULT_TEXT, MockUpstream

CLAUDE = "claude-sonnet-4-6"
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def claude() -> Iterator[MockAnthropic]:
    with MockAnthropic() as m:
        yield m


@pytest.fixture(scope="module")
def llama() -> Iterator[MockOllama]:
    with MockOllama() as m:
        yield m


@pytest.fixture
def gw(
    tmp_path: Path, mock: MockUpstream, claude: MockAnthropic, llama: MockOllama
) -> Iterator[LiveGateway]:
    for m in (mock, claude, llama):
        m.reset()
    settings = gateway_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'p.db'}",
        mock.url,
        upstreams={
            "anthropic": {"url": claude.base_url},
            "ollama": {"url": llama.base_url},
            "my-vllm": {"url": mock.url, "gpu_usd_per_hour": 3.6},
        },
    )
    gateway = LiveGateway(settings).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def test_anthropic_messages_non_stream_and_cache_tokens(
    gw: LiveGateway, claude: MockAnthropic
) -> None:
    with anthropic.Anthropic(
        base_url=f"{gw.base_url}/anthropic/{gw.org.write_key}", api_key="sk-ant-test", max_retries=0
    ) as client:
        message = client.messages.create(
            model=CLAUDE,
            max_tokens=100,
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_headers={"x-mock-cache-read": "100", "x-mock-cache-write": "50"},
        )
    assert message.content[0].text == CLAUDE_TEXT  # type: ignore[union-attr]
    seen = claude.requests[-1]
    assert seen.path == "/v1/messages"
    assert gw.org.write_key not in str(seen.headers)
    [row] = gw.wait_records(1)
    usage = message.usage
    assert row["provider"] == "anthropic" and row["protocol"] == "anthropic"
    assert row["model"] == CLAUDE and row["kind"] == "llm"
    assert row["cached_tokens"] == usage.cache_read_input_tokens == 100
    assert row["cache_write_tokens"] == usage.cache_creation_input_tokens == 50
    assert row["prompt_tokens"] == usage.input_tokens + 150
    assert row["completion_tokens"] == usage.output_tokens
    assert row["cost_known"] is True and row["cost_cache_read_usd"] is not None
    detail = gw.record(row["id"])
    assert detail["request_headers"].get("authorization", "[REDACTED]") == "[REDACTED]"
    assert "sk-ant-test" not in str(detail)


def test_anthropic_stream_with_tool_use(gw: LiveGateway) -> None:
    tools = [{"name": "get_weather", "description": "w", "input_schema": {"type": "object"}}]
    with (
        anthropic.Anthropic(
            base_url=f"{gw.base_url}/anthropic/{gw.org.write_key}",
            api_key="sk-ant-x",
            max_retries=0,
        ) as client,
        client.messages.stream(
            model=CLAUDE,
            max_tokens=100,
            messages=MESSAGES,
            tools=tools,  # type: ignore[arg-type]
            extra_headers={"x-mock-tool-call": "1", "x-mock-chunk-delay-ms": "5"},
        ) as stream,
    ):
        final = stream.get_final_message()
    tool = next(b for b in final.content if b.type == "tool_use")
    assert tool.input == TOOL_INPUT  # type: ignore[union-attr]
    [row] = gw.wait_records(1)
    assert row["stream"] is True and row["state"] == "ok"
    assert row["completion_tokens"] == final.usage.output_tokens
    assert row["ttft_ms"] is not None and row["ttft_ms"] <= row["latency_ms"]
    body = gw.record(row["id"])["response_body"]
    assert body["type"] == "message" and body["stop_reason"] == final.stop_reason
    assert next(b for b in body["content"] if b["type"] == "tool_use")["input"] == TOOL_INPUT


def test_anthropic_errors_keep_anthropic_shape(gw: LiveGateway) -> None:
    with (
        anthropic.Anthropic(
            base_url=f"{gw.base_url}/anthropic/hg_wrongwrongwrongwrongwrong",
            api_key="k",
            max_retries=0,
        ) as client,
        pytest.raises(anthropic.AuthenticationError) as info,
    ):
        client.messages.create(model=CLAUDE, max_tokens=10, messages=MESSAGES)  # type: ignore[arg-type]
    assert info.value.body["type"] == "error"  # type: ignore[index]
    with (
        anthropic.Anthropic(
            base_url=f"{gw.base_url}/anthropic/{gw.org.write_key}", api_key="k", max_retries=0
        ) as client,
        pytest.raises(anthropic.RateLimitError),
    ):
        client.messages.create(
            model=CLAUDE,
            max_tokens=10,
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_headers={"x-mock-status": "429"},
        )
    [row] = gw.wait_records(1)
    assert row["status"] == 429 and row["state"] == "error" and row["error"]


def test_ollama_native_chat_generate_and_metadata_calls(gw: LiveGateway, llama: MockOllama) -> None:
    with ollama.Client(host=f"{gw.base_url}/ollama/{gw.org.write_key}") as client:
        reply = client.chat(model="llama3.2", messages=MESSAGES)
        assert reply.message.content == OLLAMA_TEXT
        stream = client.chat(model="llama3.2", messages=MESSAGES, stream=True)
        assert "".join(p.message.content or "" for p in stream) == OLLAMA_TEXT
        assert client.generate(model="llama3.2", prompt="hi").response == OLLAMA_TEXT
        assert client.embed(model="llama3.2", input="hi").embeddings
        names = [m.model for m in client.list().models]
        assert "llama3.2:latest" in names
        client.ps()
        client.show("llama3.2")
    rows = gw.wait_records(7)
    llm = [r for r in rows if r["kind"] == "llm"]
    other = [r for r in rows if r["kind"] == "other"]
    assert {r["endpoint"] for r in other} == {"/api/tags", "/api/ps", "/api/show"}
    assert {r["endpoint"] for r in llm} == {"/api/chat", "/api/generate", "/api/embed"}
    chat = [r for r in llm if r["endpoint"] == "/api/chat"]
    assert {r["stream"] for r in chat} == {True, False}
    for r in chat:
        assert r["provider"] == "ollama" and r["model"] == "llama3.2"
        # The mock generates at 50 tokens/s and reads prompts at 500 tokens/s (in its own ns).
        assert r["output_tokens_per_s"] == 50.0 and r["prompt_tokens_per_s"] == 500.0
        assert r["load_ms"] == 20.0 and r["cold_start"] is False
        assert r["cost_known"] is True and r["cost_usd"] == 0 and r["cost_source"] == "local"


def test_cold_ollama_model_is_recognisable(gw: LiveGateway) -> None:
    with ollama.Client(
        host=f"{gw.base_url}/ollama/{gw.org.write_key}", headers={"x-mock-cold-ms": "1500"}
    ) as client:
        list(client.chat(model="llama3.2", messages=MESSAGES, stream=True))
    [row] = gw.wait_records(1)
    assert row["load_ms"] == 1500.0 and row["cold_start"] is True
    assert row["ttft_ms"] >= 1500


def test_open_webui_ollama_connection_sees_the_same_bytes(
    gw: LiveGateway, llama: MockOllama
) -> None:
    through = f"{gw.base_url}/ollama/{gw.org.write_key}"
    for method, path, body in (
        ("GET", "/api/tags", None),
        ("GET", "/api/version", None),
        ("GET", "/api/ps", None),
        ("POST", "/api/show", {"model": "llama3.2"}),
    ):
        direct = httpx.request(method, llama.base_url + path, json=body)
        proxied = httpx.request(method, through + path, json=body)
        assert proxied.status_code == direct.status_code == 200
        assert proxied.headers["content-type"] == direct.headers["content-type"]
        assert proxied.content == direct.content, path
    missing = httpx.post(through + "/api/chat", json={"model": "nope", "messages": MESSAGES})
    assert missing.status_code == 404 and "not found" in missing.json()["error"]


def test_same_model_through_native_and_openai_routes_is_comparable(gw: LiveGateway) -> None:
    with ollama.Client(host=f"{gw.base_url}/ollama/{gw.org.write_key}") as native:
        native.chat(model="llama3.2:latest", messages=MESSAGES)
    with openai.OpenAI(
        base_url=f"{gw.base_url}/ollama/{gw.org.write_key}/v1", api_key="ollama", max_retries=0
    ) as client:
        stream = client.chat.completions.create(
            model="llama3.2",
            messages=MESSAGES,
            stream=True,  # type: ignore[arg-type]
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == OLLAMA_TEXT
    rows = gw.wait_records(2)
    assert {r["protocol"] for r in rows} == {"ollama", "openai"}
    assert {r["provider"] for r in rows} == {"ollama"}
    assert {r["model"] for r in rows} == {"llama3.2"}
    assert [r["completion_tokens"] for r in rows] == [5, 5]
    assert not any(r["tokens_estimated"] for r in rows)
    assert gw.records(model="llama3.2", provider="ollama") == rows


def test_custom_upstream_with_gpu_hour_price(gw: LiveGateway, mock: MockUpstream) -> None:
    with openai.OpenAI(
        base_url=f"{gw.base_url}/my-vllm/{gw.org.write_key}", api_key="none", max_retries=0
    ) as client:
        reply = client.chat.completions.create(model="Qwen/Qwen3-8B", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == DEFAULT_TEXT
    assert mock.requests[-1].path == "/v1/chat/completions"
    [row] = gw.wait_records(1)
    assert row["provider"] == "my-vllm" and row["upstream"] == "my-vllm"
    # $3.60 per GPU-hour = $0.000001 per ms of request time.
    assert row["cost_source"] == "gpu-hour" and row["cost_known"] is True
    assert row["cost_usd"] == pytest.approx(row["latency_ms"] * 1e-6, rel=0.01)


def test_unknown_upstream_name_is_not_a_gateway_route(gw: LiveGateway) -> None:
    resp = httpx.post(f"{gw.base_url}/nowhere/{gw.org.write_key}/chat/completions", json={})
    assert resp.status_code == 404
