"""Spool frames: every declared key is written by the gateway and read by the writer.

``capture/frames.py`` declares the start and end frames once; mypy holds both sides to it
statically. This test holds it at run time: requests covering every path of the gateway
(plain, stream, error, metadata headers, cache hit, retries and fallbacks, a cut response, a
client that leaves) are spooled with the writer off, and the writer's record builder then
reads those frames through dicts that note which keys it asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from conftest import LiveGateway, gateway_settings
from heliograph.capture.frames import END_KEYS, META_KEYS, START_KEYS
from heliograph.capture.record import build_record, provider_of
from heliograph.capture.spool import KIND_START, spool_dirs
from heliograph.capture.writer import frame_id
from mock_upstream import MockUpstream

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Noting(dict[str, Any]):
    """A frame that remembers which of its keys were asked for."""

    def __init__(self, data: dict[str, Any], asked: set[str]) -> None:
        super().__init__(data)
        self.asked = asked

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


@pytest.fixture
def spooling(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    """A gateway whose frames stay in the spool (no writer), with a small body cap."""
    mock.reset()
    settings = gateway_settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'gw.db'}",
        mock.url,
        writer="off",
        max_stored_body_bytes=1024,
        upstreams={"backup": {"url": mock.url}},
        budget_unpriced="allow",
    )
    gw = LiveGateway(settings).start()
    try:
        yield gw
    finally:
        gw.stop()


def _traffic(gw: LiveGateway) -> None:
    url = f"{gw.openai_url}/chat/completions"
    auth = {"authorization": "Bearer sk-test"}

    def post(body: Any = CHAT, timeout: float = 15, **headers: str) -> httpx.Response:
        return httpx.post(url, json=body, headers={**auth, **headers}, timeout=timeout)

    assert post().status_code == 200
    assert post({**CHAT, "stream": True}).status_code == 200
    assert post(**{"x-mock-status": "500"}).status_code == 500
    meta = {
        "Helicone-User-Id": "u",
        "Helicone-Session-Id": "s",
        "Helicone-Session-Path": "/a",
        "Helicone-Session-Name": "n",
        "Helicone-Property-Env": "prod",
        "Helicone-Omit-Request": "false",
        "Helicone-Omit-Response": "false",
        "Helicone-Model-Override": "gpt-4o",
        "Helicone-RateLimit-Policy": "100;w=60;s=user",
        "X-OpenWebUI-User-Email": "a%40b.c",
        "X-OpenWebUI-User-Id": "owui",
        "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }
    assert post(**meta).status_code == 200
    owui = {
        "X-OpenWebUI-User-Id": "owui-only",
        "X-OpenWebUI-Chat-Id": "chat-1",
        "X-OpenWebUI-Message-Id": "m-1",
        "X-OpenWebUI-Task": "tags_generation",
    }
    assert post(**owui).status_code == 200
    cache = {"Helicone-Cache-Enabled": "true"}
    assert post(**cache).headers["helicone-cache"] == "MISS"
    assert post(**cache).headers["helicone-cache"] == "HIT"
    fallback = {"x-mock-status": "503", "Helicone-Fallbacks": '["backup"]'}
    post(**{**fallback, "Helicone-Retry-Enabled": "true", "Helicone-Retry-Num": "1"})
    assert post({**CHAT, "stream": True}, **{"x-mock-chunks": "9000"}).status_code == 200
    admin = {"Authorization": f"Bearer {gw.org.admin_key}"}
    prompts = f"{gw.base_url}/api/v1/prompts"
    httpx.post(prompts, json={"name": "p", "description": ""}, headers=admin).raise_for_status()
    version = {"messages": [{"role": "system", "content": "Be {{mood}}."}]}
    httpx.post(f"{prompts}/p/versions", json=version, headers=admin).raise_for_status()
    named = {**CHAT, "prompt_id": "p", "prompt_version": 1, "inputs": {"mood": "brief"}}
    assert post(named).status_code == 200
    budget = {"name": "b", "window": "day", "limit_usd": 100, "scope": {"property": {"env": "b"}}}
    httpx.post(f"{gw.base_url}/api/v1/budgets", json=budget, headers=admin).raise_for_status()
    unpriced = post({**CHAT, "model": "mystery-model"}, **{"Helicone-Property-Env": "b"})
    assert unpriced.status_code == 200  # admitted and noted: the price is unknown
    with pytest.raises(httpx.TimeoutException):
        post(timeout=0.3, **{"x-mock-delay-ms": "3000"})
    time.sleep(0.5)  # the gateway notices the client left and records it


def test_every_declared_frame_key_is_written_and_read(spooling: LiveGateway) -> None:
    _traffic(spooling)
    spooling.stop()
    starts: dict[str, dict[str, Any]] = {}
    ends: dict[str, dict[str, Any]] = {}
    bodies: dict[str, bytes] = {}
    for spool in spool_dirs(spooling.settings.spool_dir):
        for frame in spool.read_frames(final=True, limit=10_000):
            header = orjson.loads(frame.header)
            if frame.kind == KIND_START:
                starts[header["id"]] = header
            else:
                ends[header["id"]] = header
                bodies[header["id"]] = frame.body
    assert len(starts) == 12 and starts.keys() == ends.keys()
    written_start = set().union(*(s.keys() for s in starts.values()))
    written_meta = set().union(*(s.get("md", {}).keys() for s in starts.values()))
    written_end = set().union(*(e.keys() for e in ends.values()))
    assert written_start == START_KEYS, "start keys written vs declared"
    assert written_meta == META_KEYS, "metadata keys written vs declared"
    assert written_end == END_KEYS, "end keys written vs declared"
    asked_start: set[str] = set()
    asked_meta: set[str] = set()
    asked_end: set[str] = set()
    for rid, start in starts.items():
        md = Noting(start["md"], asked_meta) if "md" in start else None
        frame = Noting({**start, **({"md": md} if md is not None else {})}, asked_start)
        end = Noting(ends[rid], asked_end)
        assert frame_id(orjson.dumps(end)) == rid  # how the writer pairs frames
        end.asked.add("id")
        provider = provider_of(frame)  # type: ignore[arg-type]
        rows = build_record(frame, b"", end, bodies[rid], provider=provider, body_cap=1024)  # type: ignore[arg-type]
        assert rows.request["id"] == rid
    assert asked_start >= START_KEYS, f"start keys nobody reads: {START_KEYS - asked_start}"
    assert asked_meta >= META_KEYS, f"metadata keys nobody reads: {META_KEYS - asked_meta}"
    assert asked_end >= END_KEYS, f"end keys nobody reads: {END_KEYS - asked_end}"
    assert asked_start <= START_KEYS and asked_end <= END_KEYS and asked_meta <= META_KEYS
