"""Routing, authentication and every error path of the gateway, over real HTTP."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from conftest import LiveGateway, free_port, gateway_settings
from mock_upstream import DEFAULT_TEXT, MockUpstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(url: str, body: object = CHAT, **headers: str) -> httpx.Response:
    return httpx.post(
        url, json=body, headers={"authorization": "Bearer sk-p", **headers}, timeout=30
    )


def test_every_key_placement_reaches_the_upstream(gateway: LiveGateway, mock: MockUpstream) -> None:
    key = gateway.org.write_key
    base = gateway.base_url
    responses = [
        post(f"{base}/v1/{key}/chat/completions"),
        post(f"{base}/{key}/v1/chat/completions"),
        post(f"{base}/v1/chat/completions", **{"Heliograph-Auth": f"Bearer {key}"}),
        post(f"{base}/v1/chat/completions", **{"Helicone-Auth": f"Bearer {key}"}),
        post(f"{base}/v1/{key}//chat/completions"),  # Open WebUI's trailing-slash base URL
        post(f"{base}//v1/{key}/chat/completions"),
    ]
    for resp in responses:
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert [r.path for r in mock.requests] == ["/v1/chat/completions"] * 6
    for seen in mock.requests:
        assert not any(h.startswith(("helicone", "heliograph")) for h in seen.headers)
        assert key not in json.dumps(seen.headers)
    rows = gateway.wait_records(6)
    assert {r["id"] for r in rows} == {r.headers["heliograph-id"] for r in responses}


def test_query_string_is_forwarded_and_secret_params_redacted(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    resp = httpx.get(
        f"{gateway.openai_url}/models?api-key=supersecret&limit=2",
        headers={"authorization": "Bearer sk-p"},
    )
    assert resp.status_code == 200
    assert mock.requests[-1].query == "api-key=supersecret&limit=2"
    [row] = gateway.wait_records(1)
    assert "supersecret" not in json.dumps(gateway.record(row["id"]))


def test_bearer_heliograph_key_uses_the_server_side_provider_key(
    tmp_path: Path, mock: MockUpstream
) -> None:
    settings = gateway_settings(
        tmp_path, f"sqlite:///{tmp_path / 's.db'}", mock.url, openai_api_key="sk-server-side"
    )
    gw = LiveGateway(settings).start()
    try:
        mock.reset()
        # A client that only knows the Heliograph key, as its API key.
        with openai.OpenAI(
            base_url=f"{gw.base_url}/v1", api_key=gw.org.write_key, max_retries=0
        ) as c:
            c.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert mock.requests[-1].headers["authorization"] == "Bearer sk-server-side"
        # A client that sends its own provider key keeps it.
        post(f"{gw.openai_url}/chat/completions")
        assert mock.requests[-1].headers["authorization"] == "Bearer sk-p"
        # One that sends none gets the server's.
        httpx.post(f"{gw.openai_url}/chat/completions", json=CHAT)
        assert mock.requests[-1].headers["authorization"] == "Bearer sk-server-side"
        rows = gw.wait_records(3)
        assert all("sk-server-side" not in json.dumps(gw.record(r["id"])) for r in rows)
    finally:
        gw.stop()


def test_missing_or_bad_key_is_401_in_openai_shape(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    with (
        openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="sk-p", max_retries=0) as c,
        pytest.raises(openai.AuthenticationError) as info,
    ):
        c.chat.completions.create(**CHAT)  # type: ignore[call-overload]
    assert info.value.status_code == 401
    body = post(f"{gateway.base_url}/v1/hg_notarealkeyatallxxxxxxxxxxx/chat/completions").json()
    assert body["error"]["code"] == "invalid_heliograph_key"
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert mock.requests == []


def test_read_and_revoked_keys_cannot_send_traffic(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    resp = post(f"{gateway.base_url}/v1/{gateway.org.read_key}/chat/completions")
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "insufficient_scope"
    admin = {"Authorization": f"Bearer {gateway.org.admin_key}"}
    created = httpx.post(
        f"{gateway.base_url}/api/v1/keys", json={"name": "temp", "scope": "write"}, headers=admin
    ).json()
    assert post(f"{gateway.base_url}/v1/{created['key']}/chat/completions").status_code == 200
    assert (
        httpx.delete(f"{gateway.base_url}/api/v1/keys/{created['id']}", headers=admin).status_code
        == 200
    )
    assert post(f"{gateway.base_url}/v1/{created['key']}/chat/completions").status_code == 401
    assert len(mock.requests) == 1


def test_unreachable_upstream_is_502_and_recorded(tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    gw = LiveGateway(gateway_settings(tmp_path, f"sqlite:///{tmp_path / 's.db'}", dead)).start()
    try:
        with (
            openai.OpenAI(base_url=gw.openai_url, api_key="sk-p", max_retries=0) as c,
            pytest.raises(openai.APIStatusError) as info,
        ):
            c.chat.completions.create(**CHAT)  # type: ignore[call-overload]
        assert info.value.status_code == 502
        assert info.value.body["code"] == "upstream_unreachable"  # type: ignore[index]
        [row] = gw.wait_records(1)
        assert row["status"] == 502 and row["state"] == "error" and "unreachable" in row["error"]
        assert row["model"] == "gpt-4o-mini"
    finally:
        gw.stop()


def test_upstream_timeout_is_504_and_recorded(tmp_path: Path, mock: MockUpstream) -> None:
    settings = gateway_settings(
        tmp_path, f"sqlite:///{tmp_path / 's.db'}", mock.url, upstream_timeout=0.3
    )
    gw = LiveGateway(settings).start()
    try:
        started = time.monotonic()
        resp = post(f"{gw.openai_url}/chat/completions", **{"x-mock-delay-ms": "3000"})
        assert resp.status_code == 504 and time.monotonic() - started < 2.5
        assert resp.json()["error"]["code"] == "upstream_timeout"
        [row] = gw.wait_records(1)
        assert row["status"] == 504 and row["state"] == "error"
    finally:
        gw.stop()


def _stream_with_timeout(
    tmp_path: Path, mock: MockUpstream, timeout_s: float, **headers: str
) -> tuple[str, float, dict[str, object]]:
    """A chat stream through a gateway with ``upstream_timeout``: the text the client read,
    the seconds it took, and the stored record."""
    settings = gateway_settings(
        tmp_path, f"sqlite:///{tmp_path / 's.db'}", mock.url, upstream_timeout=timeout_s
    )
    gw = LiveGateway(settings).start()
    try:
        started = time.monotonic()
        with httpx.stream(
            "POST",
            f"{gw.openai_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers={"authorization": "Bearer sk-p", **headers},
            timeout=30,
        ) as resp:
            assert resp.status_code == 200
            text = resp.read().decode()
        elapsed = time.monotonic() - started
        [row] = gw.wait_records(1)
        return text, elapsed, row
    finally:
        gw.stop()


def test_an_upstream_silent_mid_stream_is_cut_and_recorded(
    tmp_path: Path, mock: MockUpstream
) -> None:
    text, elapsed, row = _stream_with_timeout(
        tmp_path, mock, 0.4, **{"x-mock-first-token-delay-ms": "4000"}
    )
    assert '"role":"assistant"' in text.replace(" ", "")  # what came before the silence
    assert "stopped answering" in text  # the error event the client is told
    assert 0.4 <= elapsed < 2.5
    assert row["state"] == "error" and row["error"] == "Upstream stopped answering mid-response."


def test_a_slow_answer_that_keeps_coming_is_never_cut(tmp_path: Path, mock: MockUpstream) -> None:
    """The timeout is the upstream's silence, not the answer's length."""
    text, elapsed, row = _stream_with_timeout(
        tmp_path, mock, 0.4, **{"x-mock-chunk-delay-ms": "250"}
    )
    assert elapsed > 0.9  # four gaps of 250 ms: over twice the timeout
    assert "data: [DONE]" in text and "error" not in text
    assert row["state"] == "ok" and row["error"] is None


def test_body_over_the_cap_is_413_and_nothing_is_forwarded(
    tmp_path: Path, mock: MockUpstream
) -> None:
    settings = gateway_settings(
        tmp_path, f"sqlite:///{tmp_path / 's.db'}", mock.url, max_body_bytes=1000
    )
    gw = LiveGateway(settings).start()
    try:
        mock.reset()
        big = {**CHAT, "messages": [{"role": "user", "content": "x" * 5000}]}
        resp = post(f"{gw.openai_url}/chat/completions", big)
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "request_too_large"

        def chunks() -> Iterator[bytes]:  # no content-length: the cap applies while reading
            yield b'{"model": "gpt-4o-mini", "messages": ['
            for _ in range(100):
                yield b'{"role": "user", "content": "yyyyyyyyyyyyyyyyyyyyyyyy"},'
            yield b"]}"

        resp = httpx.post(f"{gw.openai_url}/chat/completions", content=chunks())
        assert resp.status_code == 413
        assert mock.requests == []
        rows = gw.wait_records(2)
        assert {r["status"] for r in rows} == {413}
    finally:
        gw.stop()


async def test_client_disconnect_mid_stream_is_recorded_as_cancelled(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "POST",
            f"{gateway.openai_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-mock-chunks": "50", "x-mock-chunk-delay-ms": "40"},
        ) as resp,
    ):
        got = b""
        async for part in resp.aiter_raw():
            got += part
            if got.count(b"tok") >= 3:
                break
    [row] = gateway.wait_records(1, timeout=15)
    assert row["state"] == "cancelled"
    assert "disconnected" in row["error"]
    content = gateway.record(row["id"])["response_body"]["choices"][0]["message"]["content"]
    assert content.startswith("tok0 tok1 tok2")
    assert content.count("tok") < 50


async def test_stream_chunks_are_forwarded_as_they_arrive(gateway: LiveGateway) -> None:
    arrivals: list[tuple[float, bytes]] = []
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream(
            "POST",
            f"{gateway.openai_url}/chat/completions",
            json={**CHAT, "stream": True},
            headers={"x-mock-chunks": "6", "x-mock-chunk-delay-ms": "150"},
        ) as resp,
    ):
        assert resp.headers["content-type"].startswith("text/event-stream")
        async for part in resp.aiter_raw():
            arrivals.append((time.monotonic(), part))
    token_reads = [t for t, part in arrivals if b"tok" in part]
    assert len(token_reads) >= 6, "chunks were coalesced"
    gaps = [b - a for a, b in itertools.pairwise(token_reads)]
    assert all(g > 0.08 for g in gaps), f"chunks held back then released together: {gaps}"
    text = b"".join(p for _, p in arrivals)
    assert text.rstrip().endswith(b"data: [DONE]")
    await asyncio.sleep(0)


def test_metadata_headers_user_session_properties(gateway: LiveGateway) -> None:
    url = f"{gateway.openai_url}/chat/completions"
    post(
        url,
        **{
            "Helicone-User-Id": "u-helicone",
            "Helicone-Session-Id": "s1",
            "Helicone-Property-Feature": "search",
            "Heliograph-Property-Env": "prod",
        },
    )
    post(url, {**CHAT, "user": "u-body"}, **{"X-OpenWebUI-User-Id": "u-owui"})
    post(url, **{"X-OpenWebUI-User-Id": "u-owui", "X-OpenWebUI-Chat-Id": "chat-9"})
    post(url, **{"X-OpenWebUI-User-Email": "a%40b.example"})
    rows = gateway.wait_records(4)
    users = sorted((r["user_id"], r["session_id"]) for r in rows)
    assert users == [
        ("a@b.example", None),
        ("u-body", None),
        ("u-helicone", "s1"),
        ("u-owui", "chat-9"),
    ]
    tagged = next(r for r in rows if r["user_id"] == "u-helicone")
    assert tagged["properties"] == {"feature": "search", "env": "prod"}
    assert gateway.records(**{"property.feature": "search"}) == [tagged]
    assert gateway.records(**{"property.feature": "other"}) == []


def test_helicone_request_id_becomes_the_record_id(gateway: LiveGateway) -> None:
    rid = "0b9a6f3e-2f64-4c55-9d2b-0c6f9b6e8a11"
    resp = post(f"{gateway.openai_url}/chat/completions", **{"Helicone-Request-Id": rid})
    assert resp.headers["helicone-id"] == rid
    resp = post(f"{gateway.openai_url}/chat/completions", **{"Helicone-Request-Id": "nope"})
    assert resp.headers["helicone-id"] != "nope"
    rows = gateway.wait_records(2)
    assert rid in {r["id"] for r in rows}
