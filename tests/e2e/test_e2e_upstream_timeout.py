"""The upstream timeout as users set it (``HELIOGRAPH_UPSTREAM_TIMEOUT``), through
`heliograph serve` and the real `openai` client: an upstream that never answers is a 504, one
that goes silent mid-stream is cut and the client told, and a slow answer that keeps coming
is never cut. The stored records say which is which.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from e2e_harness import Heliograph, new_id

from conftest import free_port
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow
TIMEOUT_S = 1.0
MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Heliograph]:
    mock = MockUpstream().start()
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": mock.url,
        "HELIOGRAPH_UPSTREAM_TIMEOUT": str(TIMEOUT_S),
    }
    served = Heliograph(tmp_path_factory.mktemp("timeout"), free_port(), env=env).start()
    try:
        yield served
    finally:
        served.stop()
        mock.stop()


@pytest.fixture
def client(server: Heliograph) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.url("v1"), api_key="sk-test", max_retries=0) as c:
        yield c


def test_an_upstream_that_never_answers_is_a_504(server: Heliograph, client: openai.OpenAI) -> None:
    rid = new_id()
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,  # type: ignore[arg-type]
            extra_headers={"Helicone-Request-Id": rid, "x-mock-delay-ms": "8000"},
        )
    assert info.value.status_code == 504
    assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + 3
    record = server.record(rid)
    assert record["status"] == 504 and record["state"] == "error"
    assert record["error"] == "Upstream did not answer in time."


def _stream(client: openai.OpenAI, rid: str, **headers: str) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        extra_headers={"Helicone-Request-Id": rid, **headers},
    )


def test_an_upstream_silent_mid_stream_is_cut_and_the_client_told(
    server: Heliograph, client: openai.OpenAI
) -> None:
    rid = new_id()
    started = time.monotonic()
    stream = _stream(client, rid, **{"x-mock-first-token-delay-ms": "8000"})
    roles = []
    with stream, pytest.raises(openai.APIError, match="stopped answering"):
        for chunk in stream:
            roles += [c.delta.role for c in chunk.choices]
    assert roles == ["assistant"]  # what came before the silence
    assert time.monotonic() - started < TIMEOUT_S + 3
    record = server.record(rid)
    assert record["status"] == 200 and record["state"] == "error"
    assert record["error"] == "Upstream stopped answering mid-response."


def test_a_slow_stream_that_keeps_coming_is_never_cut(
    server: Heliograph, client: openai.OpenAI
) -> None:
    rid = new_id()
    started = time.monotonic()
    stream = _stream(client, rid, **{"x-mock-chunk-delay-ms": "600"})
    with stream:
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Hello from the mock upstream."
    assert time.monotonic() - started > 2 * TIMEOUT_S  # four gaps of 600 ms
    record = server.record(rid)
    assert record["state"] == "ok" and record["error"] is None
    assert record["completion_tokens"] == 5
