"""Open WebUI's people, chat titles and groups in a real browser: hostile text stays text.

Users named like markup (``<img src=x onerror=...>``, ``"><script>``), right-to-left text,
emoji and very long names, chat titles and group names alike, arrive through Open WebUI's
headers and its title generation. Every page that shows them (and the Requests page's live
mode, which builds rows in JavaScript) is opened in headless Chromium: no dialog opens, no
element is injected, the Content-Security-Policy is never hit, and the text reads as sent.
Skipped when /usr/bin/chromium is missing, except in CI (CI=true), where that fails.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from browser_support import chromium_browser
from conftest import LiveGateway, gateway_settings
from mock_upstream import MockUpstream
from web_support import PASSWORD, add_user, send

EMAIL = "admin@example.com"
TITLE_PROMPT = (
    "### Task:\nGenerate a concise title summarizing the chat history.\n### Guidelines:\n"
    "- Keep it short: 2-4 words is best.\n### Output:\n"
    'JSON format: { "title": "your concise title here" }\n### Chat History:\n'
    "<chat_history>\nUSER: hello\nASSISTANT: hi\n</chat_history>"
)
# (user id, name, email, groups, chat title): each is somebody's chat with a generated title
PEOPLE = (
    (
        "u-img",
        "<img src=x onerror=alert(1)>",
        "img@example.com",
        "<b>Bold</b>",
        "<img src=x onerror=alert(2)>",
    ),
    (
        "u-quote",
        '"><script>alert(3)</script>',
        '"><svg onload=alert(4)>@x.io',
        "Research",
        "\"'><svg onload=alert(5)>",
    ),
    (
        "u-rtl",
        "\u202e\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645\u202c Ωmega",
        "rtl@example.com",
        "\u0641\u0631\u064a\u0642",
        "\u202etitle reversed\u202c",
    ),
    ("u-emoji", "🦦 Otter 👩‍💻 Zoë", "otter@example.com", "🦦 Club", "🎉 Party time 🎉"),
    ("u-long", "L" * 20 + "o" * 230 + "ng", "long@example.com", "g" * 200, "T" * 250),
)
INJECTED = "img[src=x], script:not([src]), svg[onload], [onerror], [onload]"


def headers(user: str, name: str, email: str, groups: str, **extra: str) -> dict[str, str]:
    return {
        "x-openwebui-user-id": user,
        "x-openwebui-user-name": urllib.parse.quote(name, safe=" "),
        "x-openwebui-user-email": urllib.parse.quote(email, safe="@"),
        "x-openwebui-user-role": "user",
        "x-openwebui-user-groups": urllib.parse.quote(groups, safe=" "),
        **extra,
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("owui-browser")
    gw = LiveGateway(gateway_settings(tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url)).start()
    try:
        add_user(gw, EMAIL)
        for user, name, email, groups, title in PEOPLE:
            chat = f"chat-{user}"
            send(
                gw,
                f"hello from {user}",
                "gpt-4o",
                **headers(user, name, email, groups, **{"x-openwebui-chat-id": chat}),
            )
            extra = {
                "x-openwebui-chat-id": chat,
                "x-openwebui-task": "title_generation",
                "x-mock-title": urllib.parse.quote(title),
            }
            send(gw, TITLE_PROMPT, "gpt-4o-mini", **headers(user, name, email, groups, **extra))
        gw.wait_records(2 * len(PEOPLE))
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def page(browser: Any, live: LiveGateway) -> Iterator[Any]:
    context = browser.new_context(base_url=live.base_url)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    dialogs: list[str] = []
    csp: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", on_dialog)
    tab.on("console", lambda msg: csp.append(msg.text) if "Content Security" in msg.text else None)
    tab.dialogs, tab.csp = dialogs, csp
    tab.goto("/login")
    tab.fill("input[name=email]", EMAIL)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)
    try:
        yield tab
    finally:
        context.close()


def text_of(page: Any) -> str:
    return str(page.locator("main").text_content())


def check(page: Any, path: str, *texts: str) -> str:
    page.goto(path)
    page.wait_for_load_state("load")
    assert page.locator(INJECTED).count() == 0, path
    body = text_of(page)
    for text in texts:
        assert text in body, (path, text[:40])
    assert not page.dialogs and not page.csp, (path, page.dialogs, page.csp)
    return body


def test_hostile_names_titles_and_groups_render_as_text(page: Any, live: LiveGateway) -> None:
    names = [p[1] for p in PEOPLE]
    emails = [p[2] for p in PEOPLE]
    check(page, "/users", *names, *emails, *[p[3] for p in PEOPLE])
    check(page, "/requests", *names)
    check(page, "/tasks", *names)
    check(page, "/", *[f"{p[1]} <{p[2]}>" for p in PEOPLE[:3]])
    check(page, "/groups", *[p[3] for p in PEOPLE])
    records = {r["user_id"]: r for r in live.records(task="title_generation")}
    for user, name, email, groups, title in PEOPLE:
        check(page, "/users/" + urllib.parse.quote(user, safe=""), name, email, groups)
        check(
            page,
            "/sessions/" + urllib.parse.quote(f"chat-{user}", safe=""),
            title,
            f"{name} <{email}>",
        )
        check(page, f"/requests/{records[user]['id']}", f"{name} <{email}>", title)
        check(page, "/users?" + urllib.parse.urlencode({"group": groups}), groups, name)
    # the users' links still lead to their pages, by id
    page.goto("/users")
    page.locator("table.users a[title=u-quote]").first.click()
    page.wait_for_url("**/users/u-quote**")
    assert PEOPLE[1][1] in text_of(page)


def test_live_rows_built_by_the_script_stay_text(page: Any, live: LiveGateway) -> None:
    page.goto("/requests?live=1")
    page.wait_for_load_state("load")
    user, name, email, groups, _ = PEOPLE[0]
    send(
        live,
        "a live one",
        "gpt-4o-mini",
        **headers(user, name, email, groups, **{"x-openwebui-task": "tags_generation"}),
    )
    page.wait_for_selector("#request-rows tr.fresh", timeout=15_000)
    fresh = page.locator("#request-rows tr.fresh").first
    assert fresh.locator("td:nth-child(6) a").inner_text() == f"{name} <{email}>"  # User
    assert fresh.locator("a.badge.task").inner_text() == "tags_generation"
    assert page.locator(INJECTED).count() == 0
    assert not page.dialogs and not page.csp
