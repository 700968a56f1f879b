"""A multi-turn conversation through `heliograph serve`, as the Sessions pages show it.

The server is configured with environment variables only. The real `openai` package holds a
conversation that resends its history each turn (one turn streamed, one a tool call and its
result), naming the session with ``Helicone-Session-Id`` / ``Helicone-Session-Name`` through
``extra_headers``; a second, shorter session runs beside it. Then the dashboard, logged in
over HTTP, must list both sessions with the stored name, user and number of records, find
them by search, and show the conversation's transcript: each message once, in the order it
was said, each linked to the stored record that sent or produced it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from e2e_harness import Heliograph, admin_env, dashboard_login, new_id, serving

from mock_upstream import DEFAULT_TEXT, TOOL_ARGUMENTS, MockUpstream

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "sessions@example.com"
ADMIN_PASSWORD = "e2e sessions horse battery"
SESSION, NAME, USER = "trip-e2e-1", "Weekend in Paris", "maria"
OTHER, OTHER_NAME, OTHER_USER = "quick-e2e-2", "A quick <question>", "tom"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("sessions-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        **admin_env(ADMIN_EMAIL, ADMIN_PASSWORD),
    }
    with serving(home, env) as server:
        yield server


def _headers(session: str, name: str, user: str, rid: str, **more: str) -> dict[str, str]:
    return {
        "Helicone-Session-Id": session,
        "Helicone-Session-Name": name,
        "Helicone-User-Id": user,
        "Helicone-Request-Id": rid,
        **more,
    }


def _conversation(sdk: openai.OpenAI) -> list[tuple[str, str, str]]:
    """Four turns resending the history; returns (role, text, request id) as said."""
    said: list[tuple[str, str, str]] = []
    history: list[Any] = [{"role": "system", "content": "You plan trips."}]
    rid = new_id()
    said.append(("system", "You plan trips.", rid))

    def ask(question: str | None, rid: str, **options: Any) -> Any:
        if question is not None:
            history.append({"role": "user", "content": question})
            said.append(("user", question, rid))
        return sdk.chat.completions.create(model="gpt-4o-mini", messages=history, **options)

    # 1: plain
    answer = ask("Plan a weekend in Paris.", rid, extra_headers=_headers(SESSION, NAME, USER, rid))
    text = answer.choices[0].message.content
    history.append({"role": "assistant", "content": text})
    said.append(("assistant", text, rid))
    # 2: streamed, a longer answer
    rid = new_id()
    headers = _headers(SESSION, NAME, USER, rid, **{"x-mock-chunks": "4"})
    stream = ask("And the museums?", rid, stream=True, extra_headers=headers)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    history.append({"role": "assistant", "content": text})
    said.append(("assistant", text, rid))
    # 3: a tool call ...
    rid = new_id()
    headers = _headers(SESSION, NAME, USER, rid, **{"x-mock-tool-call": "1"})
    answer = ask("What will the weather be?", rid, tools=TOOLS, extra_headers=headers)
    call = answer.choices[0].message.tool_calls[0]
    assert call.function.arguments == TOOL_ARGUMENTS
    history.append(answer.choices[0].message.model_dump(exclude_none=True))
    said.append(("assistant", "", rid))  # a tool call, no text
    # 4: ... its result, and the answer
    rid = new_id()
    history.append({"role": "tool", "tool_call_id": call.id, "content": "Sunny, 24 C"})
    said.append(("tool", "Sunny, 24 C", rid))
    answer = ask(None, rid, tools=TOOLS, extra_headers=_headers(SESSION, NAME, USER, rid))
    text = answer.choices[0].message.content
    said.append(("assistant", text, rid))
    return said


def _transcript(page: str) -> list[tuple[str, str, str]]:
    """(role, text, request id) of each bubble, in page order."""
    found = re.search(r'<ol class="transcript" id="transcript">(.*?)</ol>', page, re.S)
    assert found, page[:3000]
    out = []
    for item in re.findall(r"<li (.*?)</li>", found.group(1), re.S):
        rid = re.search(r'data-request="([^"]+)"', item)
        role = re.search(r'data-role="([^"]+)"', item)
        assert rid and role, item
        texts = re.findall(r'<div class="text">(.*?)</div>', item, re.S)
        out.append((role.group(1), html.unescape("".join(texts)), rid.group(1)))
    return out


def _row(page: str, session: str) -> list[str]:
    row = re.search(rf'<tr data-session="{re.escape(session)}">(.*?)</tr>', page, re.S)
    assert row, page[:3000]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    return [html.unescape(" ".join(re.sub(r"<[^>]+>", " ", c).split())) for c in cells]


def test_sessions_list_and_transcript_match_the_records(serve: Heliograph) -> None:
    with openai.OpenAI(base_url=serve.url("v1"), api_key="sk-e2e", max_retries=0) as sdk:
        said = _conversation(sdk)
        other = new_id()
        sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Quick one?"}],
            extra_headers=_headers(OTHER, OTHER_NAME, OTHER_USER, other),
        )
    ids = list(dict.fromkeys(rid for _, _, rid in said))
    records = {rid: serve.record(rid) for rid in [*ids, other]}
    # what was stored: the session, its name and user on every record, the answers
    for rid in ids:
        r = records[rid]
        assert (r["session_id"], r["session_name"], r["user_id"]) == (SESSION, NAME, USER)
    assert DEFAULT_TEXT in said[2][1]  # the first answer is the mock's text
    stored = serve.api("/api/v1/requests", session_id=SESSION, limit=100).json()["data"]
    assert sorted(r["id"] for r in stored) == sorted(ids)

    with dashboard_login(serve.base_url, ADMIN_EMAIL, ADMIN_PASSWORD) as web:
        listing = web.get("/sessions", params={"range": "1h"}).text
        shown = re.findall(r'<tr data-session="([^"]+)"', listing)
        assert shown == [OTHER, SESSION]  # the latest first
        row = _row(listing, SESSION)
        assert row[0] == f"{NAME} {SESSION}" and row[1] == USER and row[2] == str(len(stored))
        other_row = _row(listing, OTHER)
        assert other_row[0] == f"{OTHER_NAME} {OTHER}" and other_row[1:3] == [OTHER_USER, "1"]
        assert "A quick <question>" not in listing  # the name is escaped text
        found = web.get("/sessions", params={"range": "1h", "q": "paris"}).text
        assert re.findall(r'<tr data-session="([^"]+)"', found) == [SESSION]
        by_user = web.get("/sessions", params={"range": "1h", "q": OTHER_USER}).text
        assert re.findall(r'<tr data-session="([^"]+)"', by_user) == [OTHER]
        fewest = web.get("/sessions", params={"range": "1h", "sort": "requests"}).text
        assert re.findall(r'<tr data-session="([^"]+)"', fewest) == [OTHER, SESSION]

        page = web.get(f"/sessions/{SESSION}").text
    assert f'<span class="session-title">{NAME}</span>' in page
    bubbles = _transcript(page)
    assert [(role, text.strip(), rid) for role, text, rid in bubbles] == [
        (role, text, rid) for role, text, rid in said
    ]
    # the tool call is shown with its name and arguments in the request that produced it
    start = page.index(f'data-request="{said[6][2]}" data-role="assistant"')
    call = page[start : page.index("</li>", start)]
    assert "Tool call <code>get_weather</code>" in call and "Paris" in call and "celsius" in call
    for rid in ids:
        assert f'href="/requests/{rid}"' in page
    # the tree of requests is kept below
    assert page.index('id="transcript"') < page.index('class="timeline"')
