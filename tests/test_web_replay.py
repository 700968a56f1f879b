"""Replay from the request detail page: as it was, edited, with a one-off provider key."""

from __future__ import annotations

import json

import httpx

from conftest import LiveGateway
from mock_upstream import DEFAULT_TEXT, MockUpstream
from web_support import WebClient, add_user

CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
}


def original(gw: LiveGateway, **headers: str) -> str:
    resp = httpx.post(
        f"{gw.openai_url}/chat/completions",
        json=CHAT,
        headers={"authorization": "Bearer sk-p", "Helicone-User-Id": "alice", **headers},
    )
    assert resp.status_code == 200
    rid = resp.headers["heliograph-id"]
    gw.wait_records(1)
    return rid


def test_replay_edited_with_a_one_off_key_is_recorded_and_linked(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    rid = original(gateway)
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        detail = web.get(f"/requests/{rid}")
        assert 'id="replay"' in detail.text and "Replay</button>" in detail.text
        edited = {**CHAT, "model": "gpt-4o", "max_tokens": 3}
        resp = web.post(
            f"/requests/{rid}/replay",
            {"body": json.dumps(edited), "provider_key": "sk-typed-once"},
        )
    assert resp.status_code == 200, resp.text
    seen = mock.requests[-1]
    assert seen.json["model"] == "gpt-4o" and seen.json["max_tokens"] == 3
    assert seen.headers["authorization"] == "Bearer sk-typed-once"
    # The comparison: both outputs, a word diff, and the new figures.
    assert DEFAULT_TEXT in resp.text  # original output
    assert "<del>" in resp.text and "<ins>" not in resp.text  # max_tokens cut the reply short
    assert "Hello from the" in resp.text
    rows = gateway.wait_records(2)
    replayed = next(r for r in rows if r["id"] != rid)
    assert replayed["properties"]["replay_of"] == rid
    assert replayed["properties"]["replayed_by"] == "admin@example.com"
    assert replayed["model"] == "gpt-4o" and replayed["user_id"] == "alice"
    assert replayed["id"] in resp.text
    assert "sk-typed-once" not in json.dumps(gateway.record(replayed["id"]))


def test_replay_refuses_bad_input_and_csrf_less_posts(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    rid = original(gateway, **{"Helicone-Omit-Request": "true"})
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        detail = web.get(f"/requests/{rid}")
        assert "cannot be replayed" in detail.text and "Replay</button>" not in detail.text
        resp = web.post(f"/requests/{rid}/replay", {"body": json.dumps(CHAT)})
        assert resp.status_code == 400
        assert web.post(f"/requests/{rid}/replay", {"body": "{}"}, csrf="").status_code == 403
    rid2 = original(gateway)
    with WebClient(gateway, "admin@example.com") as web:
        assert web.post(f"/requests/{rid2}/replay", {"body": "not json"}).status_code == 400
        assert web.post(f"/requests/{rid2}/replay", {"body": "[1]"}).status_code == 400
        assert web.post("/requests/nope/replay", {"body": "{}"}).status_code == 404
    assert len(mock.requests) == 2  # nothing was replayed


def test_viewers_cannot_replay(gateway: LiveGateway, mock: MockUpstream) -> None:
    """Replay spends money with the server's provider key: admins only, like settings."""
    rid = original(gateway)
    add_user(gateway, "viewer@example.com", role="viewer")
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "viewer@example.com") as web:
        detail = web.get(f"/requests/{rid}")
        assert detail.status_code == 200
        assert "Only admins can replay" in detail.text
        assert "/replay" not in detail.text and "Replay</button>" not in detail.text
        assert 'name="provider_key"' not in detail.text
        for body in (json.dumps(CHAT), json.dumps({**CHAT, "model": "gpt-4o"})):
            resp = web.post(f"/requests/{rid}/replay", {"body": body, "provider_key": "sk-x"})
            assert resp.status_code == 403, resp.text
            assert "Only admins" in resp.text
        assert web.post("/requests/nope/replay", {"body": "{}"}).status_code == 403
    assert len(mock.requests) == 1  # only the original reached the upstream
    assert len(gateway.wait_records(1)) == 1
    with WebClient(gateway, "admin@example.com") as web:  # the same form works for an admin
        detail = web.get(f"/requests/{rid}")
        assert f'action="/requests/{rid}/replay#replay"' in detail.text
        assert "Replay</button>" in detail.text
        resp = web.post(f"/requests/{rid}/replay", {"body": json.dumps(CHAT)})
        assert resp.status_code == 200, resp.text
    assert len(mock.requests) == 2


def test_an_edit_grown_past_a_settings_form_is_refused_inline_and_kept(
    gateway: LiveGateway,
) -> None:
    """An edited body over what replay sends (but under the replay form's own limit) comes
    back in the form with the reason; any other form over its limit is a 413, not a
    CSRF failure."""
    rid = original(gateway)
    add_user(gateway, "admin@example.com")
    grown = json.dumps({**CHAT, "messages": [{"role": "user", "content": "x" * 100_000}]})
    with WebClient(gateway, "admin@example.com") as web:
        resp = web.post(f"/requests/{rid}/replay", {"body": grown})
        assert resp.status_code == 400, resp.text[:500]
        assert "too large" in resp.text and "x" * 100_000 in resp.text
        big = web.post("/settings/keys", {"name": "k" * 70_000})
        assert big.status_code == 413 and "larger than 64 KB" in big.text
        assert "CSRF" not in big.text
