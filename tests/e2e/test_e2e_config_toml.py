"""`heliograph serve --home H` configured by `H/config.toml`, as the README's Settings say.

Upstreams (`[upstreams.<name>]`), prices (`[[prices]]`) and plain settings come from the
config file in the directory given with `--home`; HELIOGRAPH_HOME names another directory with
another config file, which must be ignored (the flag wins) by the server, every worker and
the writer alike.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import orjson
import pytest
from e2e_harness import (
    Heliograph,
    answers_by_worker,
    assert_never_stored,
    genai_cost,
    marker,
    new_id,
    post_chat,
    received,
    stopping,
    worker_of,
)

from conftest import free_port
from mock_ollama import DEFAULT_TEXT as OLLAMA_TEXT
from mock_ollama import MockOllama
from mock_upstream import DEFAULT_TEXT, MockUpstream, prompt_tokens_for

pytestmark = pytest.mark.slow

MYLLM_KEY = "vllm-toml-serverside-0123456789abcdef"
OPENAI_CLIENT_KEY = "sk-proj-toml-client-0123456789abcdef"
MAX_BODY = 200_000
GPU_USD_PER_HOUR = 7.2  # $0.000002 per millisecond


class Mocks:
    def __init__(self) -> None:
        self.openai = MockUpstream().start()
        self.myllm = MockUpstream().start()
        self.llama = MockOllama().start()

    def config_toml(self) -> str:
        return f"""\
# written as the README documents it
max_body_bytes = {MAX_BODY}
inject_stream_usage = false

[upstreams.openai]
url = "{self.openai.url}"
local = false

[upstreams.ollama]
url = "{self.llama.base_url}"

[upstreams.myllm]
url = "{self.myllm.url}"
protocol = "openai"
api_key = "{MYLLM_KEY}"
provider = "vllm"
gpu_usd_per_hour = {GPU_USD_PER_HOUR}
local = true

[[prices]]
model = "ft:gpt-4o-mini:acme:*"
input_per_mtok = 0.30
output_per_mtok = 1.20

[[prices]]
model = "gpt-4o*"
discount_percent = 20
"""

    def stop(self) -> None:
        for mock in (self.openai, self.myllm, self.llama):
            mock.stop()


@pytest.fixture(scope="module")
def mocks() -> Iterator[Mocks]:
    with stopping(Mocks()) as started:
        yield started


class TomlServer(Heliograph):
    decoy: Path


@pytest.fixture(scope="module", params=[1, 2], ids=lambda n: f"workers={n}")
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, mocks: Mocks
) -> Iterator[TomlServer]:
    root = tmp_path_factory.mktemp("toml")
    home, decoy, user_home = root / "home", root / "env-home", root / "user"
    for d in (home, decoy, user_home):
        d.mkdir()
    (home / "config.toml").write_text(mocks.config_toml())
    # HELIOGRAPH_HOME names another directory, whose config would break everything
    (decoy / "config.toml").write_text(
        f'max_body_bytes = 100000000\n\n[upstreams.myllm]\nurl = "http://127.0.0.1:{free_port()}/v1"\n'
    )
    serve = TomlServer(
        home,
        free_port(),
        workers=request.param,
        home_flag=True,
        user_home=user_home,
        env={"HELIOGRAPH_HOME": str(decoy)},
    )
    serve.decoy = decoy
    try:
        serve.start()
        yield serve
    finally:
        serve.stop()


def chat(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Say hello {text}"}]


def test_ollama_declared_in_config_toml(server: TomlServer, mocks: Mocks) -> None:
    text, rid = marker(), new_id()
    stream_text, stream_id = marker(), new_id()
    with ollama.Client(host=server.url("ollama"), headers={"Helicone-Request-Id": rid}) as c:
        reply = c.chat(model="llama3.2", messages=chat(text))
    with ollama.Client(
        host=server.url("ollama"),
        headers={"Helicone-Request-Id": stream_id, "x-mock-chunk-delay-ms": "20"},
    ) as c:
        parts = list(c.chat(model="llama3.2", messages=chat(stream_text), stream=True))
    assert reply.message.content == OLLAMA_TEXT
    assert "".join(p.message.content or "" for p in parts) == OLLAMA_TEXT
    assert received(mocks.llama, text).path == "/api/chat"
    for row_id, stream in ((rid, False), (stream_id, True)):
        row = server.record(row_id)
        wrong = {
            k: (row[k], v)
            for k, v in {
                "provider": "ollama",
                "upstream": "ollama",
                "protocol": "ollama",
                "kind": "llm",
                "model": "llama3.2",
                "stream": stream,
                "state": "ok",
                "prompt_tokens": prompt_tokens_for(len(f"Say hello {text}")),
                "completion_tokens": 5,
                "output_tokens_per_s": 50.0,
                "prompt_tokens_per_s": 500.0,
                "load_ms": 20.0,
                "cost_usd": 0,
                "cost_known": True,
                "cost_source": "local",
            }.items()
            if row[k] != v
        }
        assert not wrong, f"stored != expected: {wrong}"
        if stream:
            assert row["ttft_ms"] is not None and 0 < row["ttft_ms"] <= row["latency_ms"]


def test_custom_upstream_declared_in_config_toml(server: TomlServer, mocks: Mocks) -> None:
    """`[upstreams.myllm]` with api_key, provider and gpu_usd_per_hour."""
    text, rid = marker(), new_id()
    with openai.OpenAI(
        base_url=server.url("myllm", key_in_path=False), api_key=server.write_key, max_retries=0
    ) as client:
        reply = client.chat.completions.create(
            model="Qwen/Qwen3-8B",
            messages=chat(text),  # type: ignore[arg-type]
            extra_headers={"Helicone-Request-Id": rid, "x-mock-delay-ms": "100"},
        )
    assert reply.choices[0].message.content == DEFAULT_TEXT
    got = received(mocks.myllm, text)
    assert got.path == "/v1/chat/completions"
    assert got.headers["authorization"] == f"Bearer {MYLLM_KEY}"
    row = server.record(rid)
    assert (row["provider"], row["upstream"], row["protocol"]) == ("vllm", "myllm", "openai")
    assert row["state"] == "ok" and row["completion_tokens"] == 5
    assert row["cost_known"] is True and row["cost_source"] == "gpu-hour", row
    assert row["latency_ms"] >= 100 and row["cost_usd"] > 0
    assert row["cost_usd"] == pytest.approx(row["latency_ms"] * 2e-6, rel=0.02)
    assert_never_stored(row, MYLLM_KEY, server.write_key)


def test_prices_declared_in_config_toml(server: TomlServer, mocks: Mocks) -> None:
    """`[[prices]]`: a custom model's own price, and a discount on a catalogue price."""
    custom_id, discounted_id = new_id(), new_id()
    with openai.OpenAI(
        base_url=server.url("v1"), api_key=OPENAI_CLIENT_KEY, max_retries=0
    ) as client:
        for model, rid in (("ft:gpt-4o-mini:acme:toml", custom_id), ("gpt-4o-mini", discounted_id)):
            client.chat.completions.create(
                model=model,
                messages=chat(marker()),  # type: ignore[arg-type]
                extra_headers={"Helicone-Request-Id": rid},
            )
    custom = server.record(custom_id)
    assert custom["cost_known"] is True and custom["cost_source"] == "override", custom
    want = (custom["prompt_tokens"] * 0.3 + custom["completion_tokens"] * 1.2) / 1e6
    assert custom["cost_usd"] == pytest.approx(want, abs=2e-9)
    discounted = server.record(discounted_id)
    assert discounted["cost_known"] is True, discounted
    catalogue = genai_cost(
        "gpt-4o-mini", "openai", discounted["prompt_tokens"], discounted["completion_tokens"]
    )
    assert discounted["cost_usd"] == pytest.approx(catalogue * 0.8, abs=2e-9)
    assert_never_stored(discounted, OPENAI_CLIENT_KEY, server.write_key)


def test_settings_in_the_home_config_reach_every_worker(server: TomlServer, mocks: Mocks) -> None:
    """`max_body_bytes` and `inject_stream_usage` from `--home`'s config.toml hold in each
    worker process (found by the socket it accepted), and nothing reads HELIOGRAPH_HOME."""
    assert server.proc is not None

    def ask(conn: http.client.HTTPConnection) -> tuple[int, tuple[int, Any, int]]:
        text = marker()
        body = orjson.dumps({"model": "gpt-4o-mini", "messages": chat(text), "stream": True})
        status = post_chat(conn, server, body, OPENAI_CLIENT_KEY)
        pid = worker_of(server, conn)
        sent = received(mocks.openai, text).json
        big = orjson.dumps({"model": "gpt-4o-mini", "messages": chat("x" * (MAX_BODY + 50_000))})
        too_big = post_chat(conn, server, big, OPENAI_CLIENT_KEY, may_close_early=True)
        return pid, (status, sent.get("stream_options"), too_big)

    seen = answers_by_worker(server, ask, pause=0.05)
    assert len(seen) == server.workers, f"requests reached {len(seen)} worker(s): {seen}"
    if server.workers == 1:
        assert list(seen) == [server.proc.pid]
    else:
        assert server.proc.pid not in seen  # the parent only supervises its workers
    for pid, results in seen.items():
        for status, stream_options, too_big in results:
            assert status == 200, (pid, results)
            assert stream_options is None, f"worker {pid} injected stream_options (config says no)"
            assert too_big == 413, f"worker {pid} accepted a body above max_body_bytes ({too_big})"
    # the store and the spool are in the --home directory, not in HELIOGRAPH_HOME
    assert (server.home / "heliograph.db").exists()
    assert sorted(p.name for p in server.decoy.iterdir()) == ["config.toml"]
