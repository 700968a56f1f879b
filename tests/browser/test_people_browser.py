"""Sessions, Users, Groups and Tasks in a real browser (Debian's headless Chromium).

A multi-turn chat becomes a session whose page shows the conversation as a transcript in
order, each bubble linking to the request that produced it; every sortable header re-orders
its table through the URL; hostile session names, user names, groups and message text stay
text on every page that shows them. Each page tested leaves a screenshot.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browser_support import chromium_browser, screenshot
from conftest import LiveGateway, gateway_settings
from mock_upstream import MockUpstream
from web_support import PASSWORD, add_user, send

EMAIL = "people@example.com"
XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def _chat(gw: LiveGateway, messages: list[dict[str, str]], **headers: str) -> str:
    resp = httpx.post(
        f"{gw.base_url}/v1/{gw.org.write_key}/chat/completions",
        json={"model": "gpt-4o-mini", "messages": messages},
        headers={"authorization": "Bearer sk-test", **headers},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    return resp.headers["heliograph-id"]


def _owui(user: str, name: str, groups: str) -> dict[str, str]:
    return {
        "x-openwebui-user-id": user,
        "x-openwebui-user-name": urllib.parse.quote(name, safe=" "),
        "x-openwebui-user-email": f"{user}@example.com",
        "x-openwebui-user-groups": urllib.parse.quote(groups, safe=", "),
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[Any]:
    """One server with a three-turn chat (hostile name and text), and users to sort."""
    tmp = tmp_path_factory.mktemp("people-browser")
    gw = LiveGateway(gateway_settings(tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url)).start()
    try:
        add_user(gw, EMAIL)
        history: list[dict[str, str]] = []
        turns = []
        questions = ["plan a picnic", XSS[0] + " is my question", "and dessert?"]
        for i, question in enumerate(questions):
            history.append({"role": "user", "content": question})
            headers = {
                "Helicone-Session-Id": "picnic-1",
                "Helicone-Session-Name": "Picnic " + XSS[1],
                "x-mock-chunks": str(i + 1),
                **_owui("u-evil", "Eve " + XSS[0], "Ops, " + XSS[1]),
            }
            turns.append(_chat(gw, history, **headers))
            history.append(
                {"role": "assistant", "content": " ".join(f"tok{k}" for k in range(i + 1))}
            )
        for _ in range(4):
            send(
                gw,
                "heavy " * 100,
                "gpt-4o",
                **{"Helicone-User-Id": "heavy", "Helicone-Session-Id": "big"},
            )
        send(gw, "light", **{"Helicone-User-Id": "light", "Helicone-Session-Id": "small"})
        for task, user, n in (("title_generation", "heavy", 1), ("tags_generation", "light", 2)):
            for _ in range(n):
                send(gw, "a task", **{"x-openwebui-task": task, "Helicone-User-Id": user})
        gw.wait_records(11)
        gw.turns = turns  # type: ignore[attr-defined]
        gw.questions = questions  # type: ignore[attr-defined]
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def page(browser: Any, live: LiveGateway) -> Iterator[Any]:
    context = browser.new_context(base_url=live.base_url)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs
    tab.goto("/login")
    tab.fill("input[name=email]", EMAIL)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)
    try:
        yield tab
    finally:
        assert not dialogs, dialogs
        context.close()


def _inert(page: Any, where: str) -> None:
    """No hostile markup became elements, and no script ran."""
    assert page.locator("img[src=x]").count() == 0, where
    assert page.locator("[onerror], [onload]").count() == 0, where
    assert page.locator("script:not([src])").count() == 0, where
    assert not page.dialogs, where


def _column(page: Any, table: str, index: int) -> list[str]:
    """The texts of a column's cells (a cell's first link when it has one)."""
    cells = page.locator(f"{table} tbody tr td:nth-child({index})")
    return [
        t.strip()
        for t in cells.evaluate_all("cs => cs.map(c => (c.querySelector('a') || c).textContent)")
    ]


def test_session_list_and_transcript(page: Any, live: Any) -> None:
    page.goto("/sessions?range=24h")
    row = page.locator('tr[data-session="picnic-1"]')
    name = row.locator(".session-title").inner_text()
    assert name == "Picnic " + XSS[1]  # the hostile name, shown as text
    assert (
        row.locator("td.person").inner_text().strip() == "Eve " + XSS[0] + " <u-evil@example.com>"
    )
    assert row.locator("td:nth-child(3)").inner_text() == "3"
    _inert(page, "sessions list")
    screenshot(page, "sessions-list")
    # search by the user's name
    page.fill("#session-q", "eve")
    page.click("form.session-search button[type=submit]")
    page.wait_for_url("**q=eve**")
    assert page.locator("tr[data-session]").evaluate_all(
        "rs => rs.map(r => r.dataset.session)"
    ) == ["picnic-1"]
    row.locator("a").first.click()
    page.wait_for_url("**/sessions/picnic-1**")
    assert page.locator("h1 .session-title").inner_text() == "Picnic " + XSS[1]
    turns = page.locator("#transcript > li.turn")
    roles = turns.evaluate_all("ts => ts.map(t => t.dataset.role)")
    assert roles == ["user", "assistant"] * 3
    texts = [t.strip() for t in turns.locator(".text").all_inner_texts()]
    want = []
    for i, question in enumerate(live.questions):
        want += [question, " ".join(f"tok{k}" for k in range(i + 1))]
    assert texts == want  # in order, each once, the hostile question as text
    requests = turns.evaluate_all("ts => ts.map(t => t.dataset.request)")
    assert requests == [rid for rid in live.turns for _ in range(2)]
    # user bubbles sit on the right, answers on the left
    user_box = turns.nth(0).locator(".bubble").bounding_box()
    bot_box = turns.nth(1).locator(".bubble").bounding_box()
    assert user_box["x"] > bot_box["x"]
    assert page.locator("table.timeline tbody tr").count() == 3  # the tree is kept below
    _inert(page, "session page")
    screenshot(page, "session-transcript")
    page.locator(".session-facts .person a").click()  # the user, named with hostile text
    page.wait_for_url("**/users/u-evil**")
    assert page.locator("h1 .person-name").inner_text() == "Eve " + XSS[0]
    assert page.locator("#user-models tbody tr").count() == 1
    _inert(page, "user page")
    page.go_back()
    turns.nth(3).locator(".turn-meta a").click()  # the second answer: its request
    page.wait_for_url(f"**/requests/{live.turns[1]}")
    _inert(page, "request page")


def test_tables_sort_through_the_url(page: Any, live: Any) -> None:
    page.goto("/users?range=24h")
    users = _column(page, "table.users", 1)
    assert users[0] == "heavy" and len(users) == 3
    page.click("table.users th a:text-is('Requests')")
    page.wait_for_url(re.compile(r".*sort=-requests$|.*sort=requests.*"))
    # the default is most requests first, so the header's first click sorts ascending
    assert "sort=requests" in page.url
    assert _column(page, "table.users", 1)[-1] == "heavy"
    assert page.locator("table.users th[aria-sort=ascending]").inner_text().startswith("Requests")
    page.click("table.users th a:text-is('Cost')")
    page.wait_for_url("**sort=-cost**")
    assert _column(page, "table.users", 1)[0] == "heavy"
    _inert(page, "users")
    screenshot(page, "users-sorted")

    page.goto("/sessions?range=24h")
    page.click("table.sessions th a:text-is('Requests')")
    page.wait_for_url("**sort=-requests**")
    order = page.locator("tr[data-session]").evaluate_all("rs => rs.map(r => r.dataset.session)")
    assert order == ["big", "picnic-1", "small"]
    page.click("table.sessions th a:text-is('Requests')")
    page.wait_for_url("**sort=requests**")
    flipped = page.locator("tr[data-session]").evaluate_all("rs => rs.map(r => r.dataset.session)")
    assert flipped == ["small", "picnic-1", "big"]
    screenshot(page, "sessions-sorted")

    page.goto("/users/heavy?range=24h")
    assert page.locator("#user-models tbody tr").count() == 2  # gpt-4o, and its task
    assert page.locator("#user-days tbody tr").count() == 1
    page.click("#user-models th a:text-is('Cost')")
    page.wait_for_url("**msort=-cost**")
    assert page.locator("#user-models th[aria-sort=descending]").count() == 1
    screenshot(page, "user-page")

    page.goto("/groups?range=24h")
    groups = _column(page, "table.groups", 1)
    assert sorted(groups) == sorted(["Ops", XSS[1]])
    page.click("table.groups th a:text-is('Members')")
    page.wait_for_url("**sort=-members**")
    _inert(page, "groups")
    screenshot(page, "groups-sorted")

    page.goto("/tasks?range=24h")
    tasks = _column(page, "#per-task", 1)
    assert tasks[-1] == "chats and other calls"  # the comparison row stays last
    page.click("#per-task th a:text-is('Requests')")
    page.wait_for_url("**tsort=-requests**")
    assert _column(page, "#per-task", 1)[:2] == ["tags_generation", "title_generation"]
    page.click("#per-task th a:text-is('Requests')")
    page.wait_for_url("**tsort=requests**")
    assert _column(page, "#per-task", 1)[:2] == ["title_generation", "tags_generation"]
    assert _column(page, "#per-task", 1)[-1] == "chats and other calls"
    page.click("#per-user th a:text-is('Task requests')")
    page.wait_for_url("**usort=-requests**")
    assert "tsort=requests" in page.url  # sorting one table keeps the other's order
    assert _column(page, "#per-user", 1)[0] == "light"
    screenshot(page, "tasks-sorted")
    _inert(page, "tasks")
