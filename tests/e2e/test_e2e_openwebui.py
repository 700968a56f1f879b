"""The first user story with the real Open WebUI: its requests through `heliograph serve`.

Open WebUI 0.12.4 (the PyPI package, in its own venv: ``scripts/openwebui-env``) runs as a
subprocess, offline, with both connections pointed at Heliograph (OpenAI at
``/v1/<write-key>``, Ollama at ``/ollama/<write-key>``), Heliograph forwarding to mock
upstreams. A user with a non-ASCII name signs up (the admin), joins a group, and chats in saved
chats with one model of each connection through Open WebUI's own API, then asks for the chat's
title. The records read back say who asked (id, decoded name, email, role, groups, and whether
that came from plain headers or a verified JWT), which chat and message, which background task
(from the ``X-OpenWebUI-Task`` header on the OpenAI connection, from Open WebUI's own prompt on
the Ollama one, which sends no such header), and the chat's generated title as its session name.

Two identity modes, one Open WebUI instance each (started side by side, once per module):
plain ``X-OpenWebUI-User-*`` headers, and the signed ``X-OpenWebUI-User-Jwt`` with
``HELIOGRAPH_OPENWEBUI_JWT_SECRET`` set, where forged plain headers are ignored and a token
signed with another secret is refused (401) or, with ``HELIOGRAPH_OPENWEBUI_JWT_FAILURE=record``,
recorded as ``unverified``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import openai
import pytest
from e2e_harness import Heliograph, dashboard_login, new_id
from openwebui_harness import OpenWebUI, openwebui_environment, require_openwebui

from conftest import free_port
from mock_ollama import DEFAULT_TEXT as OLLAMA_TEXT
from mock_ollama import MockOllama
from mock_upstream import DEFAULT_TEXT as OPENAI_TEXT
from mock_upstream import MockUpstream, split_pieces

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

USER_NAME = "김민준 Ünïcode"
USER_EMAIL = "minjun@example.com"
USER_PASSWORD = "e2e correct horse battery staple"
GROUP_NAME = "Équipe Research"
TITLE = "Heliograph Test Title"
OPENAI_MODEL = "gpt-4o-mini"
OLLAMA_MODEL = "llama3.2:latest"
OPENAI_CLIENT_KEY = "sk-proj-openwebui-e2e-0123456789abcdef"
JWT_SECRET = "heliograph-e2e-jwt-secret-0123456789abcdef"
WRONG_SECRET = "not-the-secret-open-webui-and-heliograph-share"
ADMIN_EMAIL = "ops@example.com"
ADMIN_PASSWORD = "e2e correct horse battery"
MODES = ("headers", "jwt")


@dataclass(frozen=True)
class Connection:
    model: str  # as Open WebUI lists it
    recorded: str  # as the record names it (Ollama's implicit ":latest" dropped)
    provider: str  # and protocol
    reply: str


CONNECTIONS = {
    "openai": Connection(OPENAI_MODEL, OPENAI_MODEL, "openai", OPENAI_TEXT),
    "ollama": Connection(OLLAMA_MODEL, "llama3.2", "ollama", OLLAMA_TEXT),
}


@dataclass
class Stack:
    """One identity mode: Heliograph, the Open WebUI in front of it, its signed-up admin."""

    mode: str
    heliograph: Heliograph
    webui: OpenWebUI
    token: str = ""
    user: dict[str, Any] | None = None
    group: dict[str, Any] | None = None

    @property
    def user_id(self) -> str:
        assert self.user is not None
        uid: str = self.user["id"]
        return uid


class Mocks:
    def __init__(self) -> None:
        self.openai = MockUpstream().start()
        self.llama = MockOllama().start()

    def environment(self) -> dict[str, str]:
        return {
            "HELIOGRAPH_UPSTREAM_OPENAI_URL": self.openai.url,
            "HELIOGRAPH_UPSTREAM_OPENAI_LOCAL": "false",
            "HELIOGRAPH_UPSTREAM_OLLAMA_URL": self.llama.base_url,
            "HELIOGRAPH_ADMIN_EMAIL": ADMIN_EMAIL,
            "HELIOGRAPH_ADMIN_PASSWORD": ADMIN_PASSWORD,
        }

    def stop(self) -> None:
        self.openai.stop()
        self.llama.stop()


def start_heliograph(home: Path, mocks: Mocks, **env: str) -> Heliograph:
    return Heliograph(home, free_port(), env={**mocks.environment(), **env}).start()


def sign_up(stack: Stack) -> None:
    """The first account (the admin) in a group, and both connections' models listed."""
    webui = stack.webui
    user = webui.signup(USER_NAME, USER_EMAIL, USER_PASSWORD)
    assert user["role"] == "admin", user
    stack.user, stack.token = user, user["token"]
    stack.group = webui.create_group(stack.token, GROUP_NAME, [user["id"]])
    webui.model_ids(stack.token, {OPENAI_MODEL, OLLAMA_MODEL})


@pytest.fixture(scope="module")
def venv() -> Path:
    return require_openwebui()


@pytest.fixture(scope="module")
def mocks() -> Iterator[Mocks]:
    started = Mocks()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def stacks(
    venv: Path, mocks: Mocks, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Stack]]:
    """Both modes' Heliograph and Open WebUI; the two Open WebUIs start side by side."""
    built: dict[str, Stack] = {}
    try:
        for mode in MODES:
            env = {"HELIOGRAPH_OPENWEBUI_JWT_SECRET": JWT_SECRET} if mode == "jwt" else {}
            server = start_heliograph(tmp_path_factory.mktemp(f"heliograph-{mode}"), mocks, **env)
            data_dir = tmp_path_factory.mktemp(f"openwebui-{mode}")
            ow_env = openwebui_environment(
                data_dir,
                server,
                openai_key=OPENAI_CLIENT_KEY,
                title=TITLE,
                jwt_secret=JWT_SECRET if mode == "jwt" else None,
            )
            webui = OpenWebUI(venv, data_dir, free_port(), ow_env)
            built[mode] = Stack(mode, server, webui)
            webui.launch()
        for stack in built.values():
            stack.webui.wait_ready()
            print(f"Open WebUI ({stack.mode}) ready in {stack.webui.started_in:.1f} s")
            sign_up(stack)
        yield built
    finally:
        for stack in built.values():
            stack.webui.stop()
            stack.heliograph.stop()


@pytest.fixture(params=MODES)
def stack(request: pytest.FixtureRequest, stacks: dict[str, Stack]) -> Stack:
    return stacks[request.param]


@pytest.fixture(scope="module")
def recording_server(
    mocks: Mocks, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Heliograph]:
    """Heliograph expecting signed identities, recording (not refusing) bad tokens."""
    server = start_heliograph(
        tmp_path_factory.mktemp("heliograph-record"),
        mocks,
        HELIOGRAPH_OPENWEBUI_JWT_SECRET=JWT_SECRET,
        HELIOGRAPH_OPENWEBUI_JWT_FAILURE="record",
    )
    try:
        yield server
    finally:
        server.stop()


# -- reading records back --------------------------------------------------------------------


def is_title_request(record: dict[str, Any]) -> bool:
    return "### Task:" in str(record.get("request_body"))


def session_records(
    server: Heliograph, chat_id: str, want: int, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The stored model calls of a chat (newest first, with bodies), once there are ``want``."""
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        resp = server.api("/api/v1/requests", session_id=chat_id, limit=100)
        assert resp.status_code == 200, resp.text
        rows = [r for r in resp.json()["data"] if "chat" in (r.get("endpoint") or "")]
        if len(rows) >= want:
            return [server.record(r["id"]) for r in rows]
        time.sleep(0.1)
    raise AssertionError(
        f"{len(rows)} records of chat {chat_id}, expected {want}\n" + server.output()[-3000:]
    )


def assert_fields(record: dict[str, Any], **expected: Any) -> None:
    wrong = {k: (record.get(k), v) for k, v in expected.items() if record.get(k) != v}
    assert not wrong, f"stored != expected (stored, expected): {wrong}"


def assert_user(record: dict[str, Any], stack: Stack) -> None:
    """Who asked, as Open WebUI said it (headers) or signed it (jwt)."""
    assert_fields(
        record,
        user_id=stack.user_id,
        user_name=USER_NAME,
        user_email=USER_EMAIL,
        user_role="admin",
        user_groups=[GROUP_NAME],
        identity=stack.mode,
    )


def assert_model_call(record: dict[str, Any], connection: Connection) -> None:
    assert_fields(
        record,
        state="ok",
        status=200,
        provider=connection.provider,
        protocol=connection.provider,
        model=connection.recorded,
    )
    assert record["prompt_tokens"] > 0, record
    assert record["completion_tokens"] > 0, record
    assert record["tokens_estimated"] is False, record


def assistant_text(answer: dict[str, Any]) -> str:
    text: str = answer["choices"][0]["message"]["content"]
    return text


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("connection", ["openai", "ollama"])
def test_chat_and_title_through_openwebui(stack: Stack, connection: str) -> None:
    """A saved chat's turn and its title generation, through Open WebUI's API, each leave a
    record naming the user, the chat, the message and the task; the title names the session."""
    conn = CONNECTIONS[connection]
    webui, server = stack.webui, stack.heliograph
    chat_id = webui.new_chat(stack.token, conn.model)
    text = f"Tell me about heliographs {uuid.uuid4().hex}"

    message_id, answer = webui.chat(stack.token, conn.model, chat_id, text)
    assert assistant_text(answer) == conn.reply, answer
    [chat] = session_records(server, chat_id, 1)
    assert_model_call(chat, conn)
    assert chat["completion_tokens"] == len(split_pieces(conn.reply)), chat
    assert_user(chat, stack)
    assert_fields(chat, session_id=chat_id, message_id=message_id, task=None)

    messages = [{"role": "user", "content": text}, {"role": "assistant", "content": conn.reply}]
    titled = webui.generate_title(stack.token, conn.model, chat_id, messages)
    assert TITLE in assistant_text(titled), titled
    records = session_records(server, chat_id, 2)
    [title] = [r for r in records if r["id"] != chat["id"]]
    assert is_title_request(title), title.get("request_body")
    assert_model_call(title, conn)
    assert_user(title, stack)
    # The OpenAI connection sends X-OpenWebUI-Task; the Ollama one does not, so there the
    # task is recognised from Open WebUI's title prompt. Open WebUI's title endpoint has no
    # message, so {{MESSAGE_ID}} is empty on it; X-OpenWebUI-Chat-Id names the chat.
    assert_fields(title, session_id=chat_id, task="title_generation", session_name=TITLE)
    assert not title.get("message_id"), title.get("message_id")

    # The session (the chat: its answer and its title request) is named by the title.
    with dashboard_login(server.base_url, ADMIN_EMAIL, ADMIN_PASSWORD) as web:
        page = web.get(f"/sessions/{chat_id}")
    assert page.status_code == 200, page.text[:500]
    assert TITLE in page.text and chat["id"] in page.text and title["id"] in page.text


def direct_client(server: Heliograph, **headers: str) -> openai.OpenAI:
    """The openai SDK straight at Heliograph, as someone holding the write key could."""
    return openai.OpenAI(
        base_url=server.url("v1"),
        api_key=OPENAI_CLIENT_KEY,
        default_headers=headers,
        max_retries=0,
        timeout=30,
    )


def forged_headers() -> dict[str, str]:
    return {
        "X-OpenWebUI-User-Id": "forged-user-id",
        "X-OpenWebUI-User-Name": "Mallory",
        "X-OpenWebUI-User-Email": "mallory@example.com",
        "X-OpenWebUI-User-Role": "admin",
    }


def mint(secret: str, sub: str, name: str = "Signed Person") -> str:
    now = int(time.time())
    claims = {
        "sub": sub,
        "email": "signed@example.com",
        "name": name,
        "role": "user",
        "iss": "open-webui",
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


def ask(client: openai.OpenAI, rid: str, text: str = "Say hello") -> Any:
    return client.chat.completions.create(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": text}],
        extra_headers={"Helicone-Request-Id": rid},
    )


def test_forged_plain_headers_are_ignored_when_jwt_is_expected(
    stacks: dict[str, Stack],
) -> None:
    """With the JWT secret set, plain X-OpenWebUI-User-* headers (anyone with the write key can
    send them) name nobody; a valid token beside them wins."""
    server = stacks["jwt"].heliograph
    rid = new_id()
    ask(direct_client(server, **forged_headers()), rid)
    record = server.record(rid)
    assert record["user_id"] != "forged-user-id", record
    assert record["user_name"] != "Mallory" and record["identity"] != "headers", record

    rid = new_id()
    token = mint(JWT_SECRET, "signed-user-id")
    ask(direct_client(server, **forged_headers(), **{"X-OpenWebUI-User-Jwt": token}), rid)
    assert_fields(
        server.record(rid), user_id="signed-user-id", user_name="Signed Person", identity="jwt"
    )


def test_token_signed_with_another_secret_is_refused(
    stacks: dict[str, Stack], mocks: Mocks
) -> None:
    """By default (HELIOGRAPH_OPENWEBUI_JWT_FAILURE unset: refuse) a token that does not verify
    gets 401 and never reaches the upstream."""
    server = stacks["jwt"].heliograph
    token = mint(WRONG_SECRET, "impostor-id")
    text = f"Say hello {uuid.uuid4().hex}"
    with pytest.raises(openai.AuthenticationError) as caught:
        ask(direct_client(server, **{"X-OpenWebUI-User-Jwt": token}), new_id(), text)
    assert caught.value.status_code == 401
    assert not [r for r in mocks.openai.requests if text.encode() in r.body]


def test_token_signed_with_another_secret_is_recorded_unverified(
    recording_server: Heliograph,
) -> None:
    rid = new_id()
    token = mint(WRONG_SECRET, "impostor-id", name="Im Postor")
    reply = ask(direct_client(recording_server, **{"X-OpenWebUI-User-Jwt": token}), rid)
    assert reply.choices[0].message.content == OPENAI_TEXT
    record = recording_server.record(rid)
    assert_fields(
        record, status=200, user_id="impostor-id", user_name="Im Postor", identity="unverified"
    )


def test_openwebui_lists_both_connections_models(stack: Stack) -> None:
    """Both connections' model lists came through Heliograph (Open WebUI shows none if its
    ``/models`` or ``/api/tags`` call fails)."""
    ids = stack.webui.model_ids(stack.token, {OPENAI_MODEL, OLLAMA_MODEL})
    assert {OPENAI_MODEL, OLLAMA_MODEL} <= ids


def test_budget_refusal_reaches_the_chat_as_written(stacks: dict[str, Stack], mocks: Mocks) -> None:
    """A user over a blocking budget asks in Open WebUI: Open WebUI answers the chat with
    Heliograph's message as it is (which budget, its limit, when it resets), nothing reaches
    the upstream, and the refusal is recorded. One identity mode is enough: the budget sees
    the same user in both."""
    stack = stacks["headers"]
    webui, server = stack.webui, stack.heliograph
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    budgets = f"{server.base_url}/api/v1/budgets"
    made = httpx.post(
        budgets,
        headers=admin,
        json={"name": "owui-user-quota", "scope": {"user_id": stack.user_id},
              "window": "day", "limit_requests": 0},
        timeout=15,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    try:
        conn = CONNECTIONS["openai"]
        chat_id = webui.new_chat(stack.token, conn.model)
        text = f"Over budget {uuid.uuid4().hex}"
        resp = webui.call(
            "POST",
            "/api/chat/completions",
            stack.token,
            json={"model": conn.model, "messages": [{"role": "user", "content": text}],
                  "stream": False, "chat_id": chat_id, "id": str(uuid.uuid4())},
        )  # fmt: skip
        shown = resp.text
        assert resp.status_code >= 400, shown
        assert "Budget 'owui-user-quota' is used up" in shown, shown
        assert "0 requests per calendar day (UTC)" in shown and "resets at" in shown, shown
        assert "Ask your Heliograph admin to raise it." in shown, shown
        [record] = session_records(server, chat_id, 1)
        assert record["state"] == "refused" and record["status"] == 429, record
        assert record["user_id"] == stack.user_id
        assert mocks.openai.recorder.calls(text) == 0  # never forwarded
    finally:
        budget_id = made.json()["id"]
        httpx.delete(f"{budgets}/{budget_id}", headers=admin, timeout=15)
