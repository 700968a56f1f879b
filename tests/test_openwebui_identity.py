"""Open WebUI's identity, chats, tasks and groups, through the in-process gateway.

Plain ``X-OpenWebUI-User-*`` headers are recorded as ``headers``; with a JWT secret set only a
verified ``X-OpenWebUI-User-Jwt`` names the user (forged plain headers are ignored), a bad or
expired token is refused in the protocol's error shape or recorded as ``unverified``, as the
setting says. Percent-encoded values are decoded; groups, task, message and the chat title
land on the record, and the directory keeps each user's latest name, email and groups.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from conftest import LiveGateway, gateway_settings
from heliograph.gateway.headers import metadata_from_headers
from heliograph.store import end_users
from heliograph.store.engine import make_engine
from mock_upstream import MockUpstream

SECRET = "a-shared-secret-of-32-bytes-or-more!!"
NAME = "김민준 Ünïcode"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
TITLE_PROMPT = (
    "### Task:\nGenerate a concise title summarizing the chat history.\n### Guidelines:\n"
    "- Keep it short: 2-4 words is best.\n### Output:\n"
    'JSON format: { "title": "your concise title here" }\n### Chat History:\n'
    "<chat_history>\nUSER: hello\nASSISTANT: hi\n</chat_history>"
)


def token(secret: str = SECRET, **claims: Any) -> str:
    now = int(time.time())
    payload = {
        "sub": "u-1",
        "email": "minjun@example.com",
        "name": NAME,
        "role": "admin",
        "iss": "open-webui",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


def plain(user: str = "u-1", name: str = NAME, **extra: str) -> dict[str, str]:
    """Headers as Open WebUI sends them with ENABLE_FORWARD_USER_INFO_HEADERS=true."""
    return {
        "x-openwebui-user-id": user,
        "x-openwebui-user-name": urllib.parse.quote(name, safe=" "),
        "x-openwebui-user-email": "minjun@example.com",
        "x-openwebui-user-role": "admin",
        **extra,
    }


def start(tmp_path: Path, mock: MockUpstream, db: str | None = None, **extra: Any) -> LiveGateway:
    mock.reset()
    db = db or f"sqlite:///{tmp_path / 'gw.db'}"
    return LiveGateway(gateway_settings(tmp_path, db, mock.url, **extra)).start()


@pytest.fixture
def plain_gw(tmp_path: Path, mock: MockUpstream, db_url: str) -> Iterator[LiveGateway]:
    """Plain headers, on both stores."""
    gw = start(tmp_path, mock, db_url)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def signed_gw(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    gw = start(tmp_path, mock, openwebui_jwt_secret=SecretStr(SECRET))
    try:
        yield gw
    finally:
        gw.stop()


def post(gw: LiveGateway, headers: dict[str, str], body: Any = CHAT) -> httpx.Response:
    return httpx.post(
        f"{gw.openai_url}/chat/completions",
        json=body,
        headers={"authorization": "Bearer sk-test", **headers},
        timeout=15,
    )


def stored(gw: LiveGateway, resp: httpx.Response) -> dict[str, Any]:
    rid = resp.headers["heliograph-id"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = gw.api(f"/api/v1/requests/{rid}")
        if got.status_code == 200:
            return dict(got.json())
        time.sleep(0.05)
    raise AssertionError(f"record {rid} never stored")


def test_plain_headers_are_decoded_and_recorded(plain_gw: LiveGateway) -> None:
    extra = {
        "x-openwebui-chat-id": "3f1c0a52-9b7e-4d1e-8a55-0c2f6e9d1b77",
        "x-openwebui-message-id": "m-42",
        "x-openwebui-user-groups": urllib.parse.quote("Research,Équipe Nord", safe=", "),
        "x-openwebui-user-group-ids": "g1,g2",
        "x-openwebui-task": "",
    }
    resp = post(plain_gw, plain(**extra))
    assert resp.status_code == 200
    rec = stored(plain_gw, resp)
    assert rec["user_id"] == "u-1"
    assert rec["user_name"] == NAME
    assert rec["user_email"] == "minjun@example.com"
    assert rec["user_role"] == "admin"
    assert rec["user_groups"] == ["Research", "Équipe Nord"]
    assert rec["identity"] == "headers"
    assert rec["session_id"] == "3f1c0a52-9b7e-4d1e-8a55-0c2f6e9d1b77"
    assert rec["message_id"] == "m-42"
    assert rec["task"] is None
    # every new field filters, groups included (a side table, like properties)
    for params in (
        {"user_name": NAME},
        {"user_email": "minjun@example.com"},
        {"user_role": "admin"},
        {"user_group": "Équipe Nord"},
        {"identity": "headers"},
        {"message_id": "m-42"},
    ):
        assert [r["id"] for r in plain_gw.records(**params)] == [rec["id"]], params
    assert plain_gw.records(user_group="Nobody") == []
    # the directory knows the user by name, with the groups' ids
    engine = make_engine(plain_gw.settings.sqlalchemy_url)
    try:
        entry = end_users.get(engine, plain_gw.org.id, "u-1")
        assert entry is not None
        assert (entry["name"], entry["email"], entry["identity"]) == (
            NAME,
            "minjun@example.com",
            "headers",
        )
        assert entry["groups"] == ["Research", "Équipe Nord"] and entry["group_ids"] == ["g1", "g2"]
        assert end_users.group_members(engine, plain_gw.org.id) == {
            "Research": ["u-1"],
            "Équipe Nord": ["u-1"],
        }
        assert end_users.get(engine, plain_gw.other.id, "u-1") is None  # organizations apart
    finally:
        engine.dispose()


def test_a_helicone_user_keeps_open_webuis_name_off_the_record(plain_gw: LiveGateway) -> None:
    resp = post(plain_gw, {**plain(), "helicone-user-id": "someone-else"})
    rec = stored(plain_gw, resp)
    assert rec["user_id"] == "someone-else"
    assert rec["user_name"] is None and rec["identity"] is None and rec["user_groups"] == []


def test_task_header_and_title_name_the_chat(plain_gw: LiveGateway) -> None:
    chat = "c0ffee00-1111-2222-3333-444455556666"
    first = post(plain_gw, plain(**{"x-openwebui-chat-id": chat}))
    title_body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": TITLE_PROMPT}]}
    headers = {
        "x-openwebui-chat-id": chat,
        "x-openwebui-task": "title_generation",
        "x-mock-title": urllib.parse.quote("Café <b>talk</b> 🎉"),
    }
    titled = post(plain_gw, plain(**headers), title_body)
    assert titled.status_code == 200
    rec = stored(plain_gw, titled)
    assert rec["task"] == "title_generation"
    assert rec["session_name"] == "Café <b>talk</b> 🎉"
    assert stored(plain_gw, first)["task"] is None
    assert {r["id"] for r in plain_gw.records(task="title_generation")} == {rec["id"]}
    # an unknown task name in the header is not trusted (and the body says chat)
    odd = post(plain_gw, plain(**{"x-openwebui-task": "<script>"}))
    assert stored(plain_gw, odd)["task"] is None


def test_task_recognised_from_the_prompt_without_a_header(plain_gw: LiveGateway) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": TITLE_PROMPT}]}
    resp = post(plain_gw, {**plain(), "x-mock-title": "Greetings"}, body)
    rec = stored(plain_gw, resp)
    assert rec["task"] == "title_generation"
    assert rec["session_name"] == "Greetings"


def test_verified_token_wins_and_forged_headers_are_ignored(
    signed_gw: LiveGateway, mock: MockUpstream
) -> None:
    groups = {"x-openwebui-user-groups": "Research"}
    good = post(signed_gw, {"x-openwebui-user-jwt": token(), **groups})
    assert good.status_code == 200
    rec = stored(signed_gw, good)
    assert (rec["user_id"], rec["user_name"], rec["identity"]) == ("u-1", NAME, "jwt")
    assert rec["user_groups"] == ["Research"]
    # plain headers alone are forgeable: ignored once a secret is set
    forged = post(signed_gw, plain(user="ceo", name="The CEO"))
    assert forged.status_code == 200
    rec = stored(signed_gw, forged)
    assert rec["user_id"] is None and rec["user_name"] is None and rec["identity"] is None
    # beside a valid token, forged plain headers change nothing
    mixed = post(signed_gw, {**plain(user="ceo", name="The CEO"), "x-openwebui-user-jwt": token()})
    assert stored(signed_gw, mixed)["user_id"] == "u-1"
    sent = mock.requests[-1].headers  # other Open WebUI headers pass on as sent
    assert "x-openwebui-user-jwt" not in sent and sent["x-openwebui-user-id"] == "ceo"
    # a verified user outranks a User-Id header (the key holder cannot speak for someone else)
    over = post(signed_gw, {"x-openwebui-user-jwt": token(), "helicone-user-id": "ceo"})
    assert stored(signed_gw, over)["user_id"] == "u-1"
    # the token is ours to verify: never sent on to the provider, never stored
    assert "x-openwebui-user-jwt" not in mock.requests[-1].headers
    detail = signed_gw.api(f"/api/v1/requests/{rec['id']}").json()
    assert token().split(".")[0] not in str(detail)


@pytest.mark.parametrize(
    "bad",
    [
        token(secret="another-secret-that-is-long-enough!!"),
        token(exp=int(time.time()) - 3600, iat=int(time.time()) - 3900),
        "not.a.jwt",
        token(sub=None),
    ],
    ids=["forged", "expired", "garbage", "no-subject"],
)
def test_bad_token_is_refused_in_the_protocols_shape(signed_gw: LiveGateway, bad: str) -> None:
    resp = post(signed_gw, {"x-openwebui-user-jwt": bad})
    assert resp.status_code == 401
    assert resp.json()["error"]["code"] == "invalid_openwebui_identity"
    rec = stored(signed_gw, resp)  # refused, but recorded with its body
    assert rec["status"] == 401 and rec["user_id"] is None and rec["model"] == "gpt-4o-mini"
    assert bad not in str(signed_gw.api(f"/api/v1/requests/{rec['id']}").json())
    # Anthropic's shape on its route
    anthropic = httpx.post(
        f"{signed_gw.base_url}/anthropic/{signed_gw.org.write_key}/v1/messages",
        json={"model": "claude-3-5-haiku-latest", "max_tokens": 5, "messages": CHAT["messages"]},
        headers={"x-api-key": "sk-ant-test", "x-openwebui-user-jwt": bad},
        timeout=15,
    )
    assert anthropic.status_code == 401
    assert anthropic.json()["type"] == "error" and anthropic.json()["error"]["type"]


def test_record_mode_keeps_traffic_and_marks_claims_unverified(
    tmp_path: Path, mock: MockUpstream
) -> None:
    gw = start(
        tmp_path,
        mock,
        openwebui_jwt_secret=SecretStr(SECRET),
        openwebui_jwt_failure="record",
    )
    try:
        forged = token(secret="another-secret-that-is-long-enough!!", sub="ceo", name="The CEO")
        resp = post(gw, {"x-openwebui-user-jwt": forged, "x-openwebui-user-groups": "Admins"})
        assert resp.status_code == 200
        rec = stored(gw, resp)
        assert (rec["user_id"], rec["user_name"], rec["identity"]) == (
            "ceo",
            "The CEO",
            "unverified",
        )
        assert rec["user_groups"] == []  # groups only ride along a verified token
        engine = make_engine(gw.settings.sqlalchemy_url)
        try:
            assert end_users.get(engine, gw.org.id, "ceo") is None  # never in the directory
        finally:
            engine.dispose()
    finally:
        gw.stop()


def test_old_frames_without_metadata_parse_the_same_way() -> None:
    md = metadata_from_headers(
        [
            ("x-openwebui-user-id", "u-9"),
            ("x-openwebui-user-name", urllib.parse.quote("Zoë", safe=" ")),
            ("x-openwebui-chat-id", "chat-1"),
            ("x-openwebui-task", "tags_generation"),
        ]
    )
    assert md["ow"] == {"src": "headers", "id": "u-9", "name": "Zoë"}
    assert md["session"] == "chat-1" and md["task"] == "tags_generation"


def test_directory_keeps_the_latest_entry_on_both_stores(engine: Any) -> None:
    from heliograph.capture.people import Person
    from heliograph.store.end_users import people_rows, upsert

    def person(name: str | None, seen: int, groups: list[str] | None) -> Person:
        return Person("o1", "u-1", name, None, "user", groups, None, "headers", seen)

    with engine.begin() as conn:
        upsert(conn, people_rows([person("Old", 10, ["A"]), person("New", 20, ["B", "Ç"])]))
    with engine.begin() as conn:  # an older record arriving late changes nothing but first_seen
        upsert(conn, people_rows([person("Older", 5, ["Z"]), None]))
    with engine.begin() as conn:  # a later one without a name keeps the name it had
        upsert(conn, people_rows([person(None, 30, ["B"])]))
    entry = end_users.get(engine, "o1", "u-1")
    assert entry is not None
    assert (entry["name"], entry["groups"], entry["first_seen"], entry["last_seen"]) == (
        "New",
        ["B"],
        5,
        30,
    )
    assert end_users.group_members(engine, "o1") == {"B": ["u-1"]}
    assert end_users.lookup(engine, "o1", ["u-1", "nobody", None]).keys() == {"u-1"}
