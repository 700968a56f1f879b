"""Open WebUI's people and background tasks on the dashboard of `heliograph serve`.

The server runs as users run it (a subprocess configured by environment), the traffic comes
through the real ``openai`` client with the headers Open WebUI sends (user info forwarding,
``X-OpenWebUI-Task``, the chat id), and the first-start admin logs in with the printed one-time
password, changes it as asked, and reads /tasks, /users and /groups: the names and emails are
there, and the tasks' share of spend is the one computed from the stored records.
"""

from __future__ import annotations

import contextlib
import html
import re
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, new_id

from conftest import free_port
from heliograph.web.format import pct
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

NEW_PASSWORD = "e2e open webui pages horse"
TITLE_PROMPT = (
    "### Task:\nGenerate a concise title summarizing the chat history.\n### Guidelines:\n"
    "- Keep it short: 2-4 words is best.\n### Output:\n"
    'JSON format: { "title": "your concise title here" }\n### Chat History:\n'
    "<chat_history>\nUSER: hello\nASSISTANT: hi\n</chat_history>"
)
PEOPLE = {
    "u-ana": ("Ana María", "ana@example.com", "Research,Ops"),
    "u-ben": ("Ben <the> Builder", "ben@example.com", "Research"),
}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("owui-pages-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_UPSTREAM_OPENAI_LOCAL": "false",  # priced like the cloud API it stands for
    }
    server = Heliograph(home, free_port(), env=env).start()
    try:
        yield server
    finally:
        server.stop()


def client(serve: Heliograph, user: str) -> openai.OpenAI:
    """An OpenAI client configured as Open WebUI's connection for this user."""
    name, email, groups = PEOPLE[user]
    return openai.OpenAI(
        base_url=serve.url("v1"),
        api_key="sk-e2e-client",
        default_headers={
            "X-OpenWebUI-User-Id": user,
            "X-OpenWebUI-User-Name": urllib.parse.quote(name, safe=" "),
            "X-OpenWebUI-User-Email": email,
            "X-OpenWebUI-User-Role": "user",
            "X-OpenWebUI-User-Groups": urllib.parse.quote(groups, safe=","),
        },
    )


def chat(serve: Heliograph, user: str, text: str, model: str, **headers: str) -> str:
    rid = new_id()
    with client(serve, user) as sdk:
        sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": text}],
            extra_headers={"Helicone-Request-Id": rid, **headers},
        )
    return rid


@contextlib.contextmanager
def login(serve: Heliograph) -> Iterator[httpx.Client]:
    """The first-start admin, logged in with the printed one-time password, changed."""
    email = re.search(r"log in as (\S+)\)", serve.output())
    password = re.search(r"one-time password .*: (\S+)", serve.output())
    assert email and password, serve.output()
    with httpx.Client(base_url=serve.base_url, timeout=15) as web:
        yield _change_password(web, email.group(1), password.group(1))


def _change_password(web: httpx.Client, email: str, password: str) -> httpx.Client:
    token = CSRF.search(web.get("/login").text)
    assert token
    resp = web.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token.group(1)},
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/settings/password"
    form = CSRF.search(web.get("/settings/password").text)
    assert form
    changed = web.post(
        "/settings/password",
        data={
            "current": password,
            "new": NEW_PASSWORD,
            "confirm": NEW_PASSWORD,
            "csrf_token": form.group(1),
        },
    )
    assert changed.status_code in (200, 303), changed.text[:500]
    assert web.get("/").status_code == 200
    return web


def cost(records: list[dict[str, Any]]) -> float:
    return sum(r["cost_usd"] or 0.0 for r in records if r["cost_known"])


def test_tasks_and_users_pages_show_names_and_the_task_share(serve: Heliograph) -> None:
    chat_id = "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    ids = [
        chat(
            serve,
            "u-ana",
            "what is a heliograph? " * 20,
            "gpt-4o",
            **{"X-OpenWebUI-Chat-Id": chat_id},
        ),
        chat(
            serve,
            "u-ana",
            TITLE_PROMPT,
            "gpt-4o-mini",
            **{
                "X-OpenWebUI-Chat-Id": chat_id,
                "X-OpenWebUI-Task": "title_generation",
                "x-mock-title": "Signal mirrors",
            },
        ),
        chat(
            serve, "u-ana", "suggest tags", "gpt-4o-mini", **{"X-OpenWebUI-Task": "tags_generation"}
        ),
        chat(serve, "u-ben", "hello there", "gpt-4o"),
        chat(
            serve,
            "u-ben",
            "follow-ups " * 10,
            "gpt-4o-mini",
            **{"X-OpenWebUI-Task": "follow_up_generation"},
        ),
    ]
    records = [serve.record(rid) for rid in ids]
    assert [r["task"] for r in records] == [
        None,
        "title_generation",
        "tags_generation",
        None,
        "follow_up_generation",
    ]
    assert records[1]["session_name"] == "Signal mirrors"
    assert all(r["cost_known"] for r in records)
    share = cost([r for r in records if r["task"]]) / cost(records)
    with login(serve) as web:
        tasks = web.get("/tasks", params={"range": "1h"}).text
        headline = re.search(r'id="task-headline">(.*?)</p>', tasks, re.S)
        assert headline, tasks[:2000]
        text = " ".join(re.sub(r"<[^>]+>", "", headline.group(1)).split())
        assert text.startswith(f"Open WebUI background tasks were {pct(share)} of spend"), text
        for task in ("title_generation", "tags_generation", "follow_up_generation"):
            assert f"task={task}" in tasks
        users = web.get("/users", params={"range": "1h"}).text
        for name, email, _ in PEOPLE.values():
            assert html.escape(f"{name} <{email}>", quote=False) in users
        assert "<the>" not in users
        research = web.get("/users", params={"range": "1h", "group": "Ops"}).text
        assert "Ana María" in research and "Ben" not in research
        groups = web.get("/groups", params={"range": "1h"}).text
        row = re.search(r'group=Research">Research</a></td>(.*?)</tr>', groups, re.S)
        assert row, groups[:2000]
        assert re.findall(r'<td class="num">([^<]*)', row.group(1))[:2] == ["2", "5"]
        session = web.get(f"/sessions/{chat_id}").text
        assert "Signal mirrors" in session and "Ana María" in session
