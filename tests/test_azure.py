"""Azure OpenAI through the gateway, with the real ``openai.AzureOpenAI`` client.

The mock answers Azure's deployment routes as Azure does (tests/mock_azure.py). Both ways of
pointing the client at Heliograph work, whichever way the upstream's URL was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from conftest import LiveGateway, gateway_settings
from mock_azure import AZURE_MODEL, AZURE_TEXT
from mock_upstream import MockUpstream, split_pieces

API_VERSION = "2024-10-21"
AZURE_KEY = "azure-secret-key-0123456789"
DEPLOYMENT = "prod-gpt4o"


@pytest.fixture(params=["with /openai", "resource root"])
def azure_gateway(
    request: pytest.FixtureRequest, tmp_path: Path, mock: MockUpstream
) -> Iterator[LiveGateway]:
    """A gateway whose ``azure`` upstream is the mock, its URL written either way."""
    mock.reset()
    url = mock.base_url + ("/openai" if request.param == "with /openai" else "")
    settings = gateway_settings(
        tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", mock.url, upstreams={"azure": {"url": url}}
    )
    gw = LiveGateway(settings).start()
    try:
        yield gw
    finally:
        gw.stop()


def clients(gw: LiveGateway) -> list[openai.AzureOpenAI]:
    """The client as Azure's docs configure it (azure_endpoint), and with a base_url."""
    key = gw.org.write_key
    return [
        openai.AzureOpenAI(
            azure_endpoint=f"{gw.base_url}/azure/{key}", api_version=API_VERSION, api_key=AZURE_KEY
        ),
        openai.AzureOpenAI(
            base_url=f"{gw.base_url}/azure/{key}/openai", api_version=API_VERSION, api_key=AZURE_KEY
        ),
    ]


def test_chat_through_both_client_styles_is_forwarded_and_recorded(
    azure_gateway: LiveGateway, mock: MockUpstream
) -> None:
    gw = azure_gateway
    for n, client in enumerate(clients(gw), start=1):
        with client:
            reply = client.chat.completions.create(
                model=DEPLOYMENT, messages=[{"role": "user", "content": "Hello Azure"}]
            )
        assert reply.choices[0].message.content == AZURE_TEXT
        assert reply.model == AZURE_MODEL
        got = mock.wait_for(n)[-1]
        assert got.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
        assert got.query == f"api-version={API_VERSION}"
        assert got.headers["api-key"] == AZURE_KEY  # the provider key passes through

    rows = gw.wait_records(2)
    for row in rows:
        assert row["provider"] == "azure" and row["endpoint"].endswith("/chat/completions")
        assert row["model"] == DEPLOYMENT and row["response_model"] == AZURE_MODEL
        assert row["status"] == 200 and row["state"] == "ok"
        assert row["cost_usd"] is not None  # priced as the model the deployment serves
        assert row["prompt_tokens"] > 0 and row["completion_tokens"] == len(
            split_pieces(AZURE_TEXT)
        )
        full = gw.record(row["id"])
        headers = dict(full["request_headers"])
        assert headers["api-key"] == "[REDACTED]"  # and is never stored
        assert AZURE_KEY not in str(full)
        assert full["response_body"]["prompt_filter_results"][0]["prompt_index"] == 0


def test_a_stream_is_passed_through_and_reassembled(
    azure_gateway: LiveGateway, mock: MockUpstream
) -> None:
    gw = azure_gateway
    first, second = clients(gw)
    second.close()
    with first as client:
        stream = client.chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "Stream please"}], stream=True
        )
        chunks = list(stream)
    # Azure's prompt-filter chunk (no choices) reaches the client; the injected usage chunk
    # does not, since the client did not ask for it.
    assert chunks[0].choices == [] and chunks[0].model == ""
    assert all(c.usage is None for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == AZURE_TEXT
    sent = mock.wait_for(1)[0].json
    assert sent["stream_options"] == {"include_usage": True}  # asked upstream for usage

    (row,) = gw.wait_records(1)
    # Not the empty placeholders of Azure's first event: the stream is priced as the model.
    assert row["stream"] is True and row["response_model"] == AZURE_MODEL
    assert row["cost_usd"] is not None
    assert row["completion_tokens"] == len(split_pieces(AZURE_TEXT)) and row["ttft_ms"] is not None
    body = gw.record(row["id"])["response_body"]
    assert body["choices"][0]["message"]["content"] == AZURE_TEXT
    assert body["choices"][0]["finish_reason"] == "stop"


def test_async_client_and_embeddings(azure_gateway: LiveGateway, mock: MockUpstream) -> None:
    gw = azure_gateway
    client = openai.AsyncAzureOpenAI(
        azure_endpoint=f"{gw.base_url}/azure/{gw.org.write_key}",
        api_version=API_VERSION,
        api_key=AZURE_KEY,
    )

    async def go() -> None:
        out = await client.embeddings.create(model="embed-small", input=["one", "two"])
        assert len(out.data) == 2
        await client.close()

    asyncio.run(go())
    got = mock.wait_for(1)[0]
    assert got.path == "/openai/deployments/embed-small/embeddings"
    (row,) = gw.wait_records(1)
    assert row["endpoint"].endswith("/embeddings") and row["prompt_tokens"] > 0


def test_azure_errors_reach_the_client_in_azure_shape_and_are_recorded(
    azure_gateway: LiveGateway,
) -> None:
    gw = azure_gateway
    client_without_version = openai.AzureOpenAI(
        azure_endpoint=f"{gw.base_url}/azure/{gw.org.write_key}",
        api_version="",
        api_key=AZURE_KEY,
    )
    with client_without_version, pytest.raises(openai.NotFoundError) as err:
        client_without_version.chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.body == {"code": "404", "message": "Resource not found"}
    (row,) = gw.wait_records(1)
    assert row["status"] == 404 and row["state"] == "error"
    assert row["error"] == "Resource not found"
    first, second = clients(gw)
    second.close()
    with first as client:  # the same gateway, with the version: fine
        assert client.chat.completions.create(
            model=DEPLOYMENT, messages=[{"role": "user", "content": "hi"}]
        ).choices
