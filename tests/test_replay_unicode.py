"""Replay of a record whose user id is not Latin-1 (a Korean name): once a 500, now replayed."""

from __future__ import annotations

import json

import httpx

from conftest import LiveGateway
from mock_upstream import MockUpstream
from web_support import WebClient, add_user

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "안녕하세요"}]}
USER = "김민준"


def test_a_record_with_a_korean_user_id_replays_and_keeps_its_user(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    resp = httpx.post(
        f"{gateway.openai_url}/chat/completions",
        json=CHAT,
        headers=[("authorization", b"Bearer sk-p"), ("Helicone-User-Id", USER.encode())],
    )
    assert resp.status_code == 200
    rid = resp.headers["heliograph-id"]
    assert gateway.wait_records(1)[0]["user_id"] == USER
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        replay = web.post(f"/requests/{rid}/replay", {"body": json.dumps(CHAT)})
    assert replay.status_code == 200, replay.text
    rows = gateway.wait_records(2)
    replayed = next(r for r in rows if r["id"] != rid)
    assert replayed["user_id"] == USER
    assert replayed["properties"]["replay_of"] == rid
