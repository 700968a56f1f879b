"""The dashboard in a real browser (Debian's headless Chromium via Playwright).

Logs in, filters, opens a request, watches a live request arrive, exports, and proves that
hostile prompts, outputs, model names, user ids, property values and headers never execute
on any page. One browser and one server for the module; each test gets a fresh context.
Skipped when /usr/bin/chromium is missing, except in CI (CI=true), where that fails.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from browser_support import Watch, chromium_browser
from conftest import LiveGateway, gateway_settings
from mock_upstream import MockUpstream
from web_support import PASSWORD, add_user, send

EMAIL = "admin@example.com"
PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "<svg onload=alert(1)>",
)
ALL = " ".join(PAYLOADS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("browser")
    gw = LiveGateway(gateway_settings(tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url)).start()
    try:
        add_user(gw, EMAIL)
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def page(browser: Any, live: LiveGateway) -> Iterator[Any]:
    context = browser.new_context(base_url=live.base_url, accept_downloads=True)
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.watch = Watch(tab)
    try:
        yield tab
    finally:
        context.close()


def login(page: Any, start: str = "/") -> None:
    page.goto(start)
    assert "/login" in page.url
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def test_login_filter_open_and_export(page: Any, live: LiveGateway, tmp_path: Path) -> None:
    mine = [
        send(live, f"browser prompt {i}", "gpt-4o" if i % 2 else "gpt-4o-mini") for i in range(4)
    ]
    live.wait_records(2, model="gpt-4o-mini")
    live.wait_records(2, model="gpt-4o")
    assert len(mine) == 4
    login(page, "/requests")
    assert page.url.endswith("/requests")
    page.fill("form.filters input[name=model]", "gpt-4o")
    page.click("form.filters button[type=submit]")
    page.wait_for_url("**model=gpt-4o**")
    rows = page.locator("#request-rows tr")
    assert rows.count() >= 2
    assert set(rows.locator("td:nth-child(5)").all_inner_texts()) == {"gpt-4o"}  # Model
    with page.expect_download() as info:
        page.click("text=Export CSV")
    target = tmp_path / "export.csv"
    info.value.save_as(target)
    lines = target.read_text().strip().splitlines()
    assert lines[0].startswith("id,created_at") and len(lines) - 1 == rows.count()
    rows.first.locator("td.preview a").click()
    page.wait_for_url("**/requests/*")
    assert "gpt-4o" in page.locator("h1").inner_text()
    assert page.locator(".msg.role-user").first.inner_text().count("browser prompt") == 1
    assert (
        page.locator(".msg.role-assistant").inner_text().endswith("Hello from the mock upstream.")
    )
    assert page.locator("#replay").count() == 1
    page.click("nav >> text=Dashboard")
    page.click("section.tops a >> nth=0")  # drill down from the top models
    page.wait_for_url("**/requests?**")
    assert page.locator("#request-rows tr").count() >= 1
    assert not page.watch.dialogs and not page.watch.csp


def test_replay_from_the_detail_page(page: Any, live: LiveGateway) -> None:
    rid = send(live, f"replay-{uuid.uuid4().hex[:8]}", "gpt-4o-mini")
    deadline = time.monotonic() + 10
    while live.api(f"/api/v1/requests/{rid}").status_code != 200:
        assert time.monotonic() < deadline, "the original was never recorded"
        time.sleep(0.05)
    row = {"id": rid}
    login(page, f"/requests/{rid}")
    body = page.locator("#replay-body")
    edited = body.input_value().replace('"gpt-4o-mini"', '"gpt-4o"')
    body.fill(edited)
    page.fill("#replay-key", "sk-browser-once")
    page.click("#replay button[type=submit]")
    page.wait_for_url(f"**/requests/{row['id']}/replay#replay")
    assert "Replay of" in page.locator("h1").inner_text()
    table = page.locator("table.compare").inner_text()
    assert "gpt-4o-mini" in table and "gpt-4o" in table
    assert page.locator(".replay-outputs pre").count() == 2
    new_link = page.locator(".head a#new-record[href^='/requests/']")
    new_link.click()
    page.wait_for_url("**/requests/*")
    page.wait_for_timeout(300)
    page.reload()
    assert "gpt-4o" in page.locator("h1").inner_text()
    assert not page.watch.dialogs and not page.watch.csp


def test_live_request_appears_without_reload(page: Any, live: LiveGateway) -> None:
    login(page, "/requests?live=1")
    assert page.locator("#live-toggle").is_checked()
    page.evaluate("window.__stillHere = true")
    marker = f"live-{uuid.uuid4().hex[:8]}"
    time.sleep(0.3)
    send(live, marker, **{"Helicone-User-Id": marker})
    row = page.locator("#request-rows tr", has_text=marker)
    row.wait_for(timeout=10_000)
    assert page.evaluate("window.__stillHere") is True
    assert row.locator(f'a[href="/users/{marker}"]').count() == 1
    assert "live=1" in page.url
    assert not page.watch.dialogs and not page.watch.csp


def _hostile_traffic(gw: LiveGateway) -> dict[str, str]:
    headers = {
        "Helicone-User-Id": PAYLOADS[2],
        "Helicone-Session-Id": PAYLOADS[1],
        "Helicone-Property-Evil": ALL,
        "x-evil-header": ALL,
    }
    prompt = {
        "model": PAYLOADS[0],
        "messages": [
            {"role": "system", "content": ALL},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": ALL},
                    {"type": "image_url", "image_url": {"url": "javascript:alert(1)"}},
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+"
                        },
                    },
                ],
            },
        ],
    }
    with httpx.Client(timeout=15) as client:
        first = client.post(
            gw.openai_url + "/chat/completions",
            json=prompt,
            headers={"authorization": f"Bearer {ALL}", "x-mock-echo-auth": "1", **headers},
        )
        assert first.status_code == 200 and "onerror" in first.text  # the output carries it too
        second = client.post(
            gw.openai_url + "/chat/completions",
            json={**prompt, "model": PAYLOADS[3]},
            headers={
                "authorization": "Bearer sk-x",
                "Helicone-User-Id": PAYLOADS[0],
                "Helicone-Session-Id": PAYLOADS[3],
            },
        )
        assert second.status_code == 200
    gw.wait_records(1, model=PAYLOADS[0])
    gw.wait_records(1, model=PAYLOADS[3])
    return {"first": first.headers["heliograph-id"], "second": second.headers["heliograph-id"]}


def _assert_inert(page: Any, where: str, expect_text: bool = True) -> None:
    assert page.locator("img[src=x]").count() == 0, where
    assert page.locator("[onerror], [onload], [onclick]").count() == 0, where
    assert page.locator("script:not([src])").count() == 0, where
    assert page.locator("a[href^='javascript:' i]").count() == 0, where
    assert page.locator("svg[onload]").count() == 0, where
    assert all(
        src.startswith(("data:image/png", "data:image/jpeg", "http")) or src == ""
        for src in page.eval_on_selector_all(
            "img", "els => els.map(e => e.getAttribute('src') || '')"
        )
    ), where
    if expect_text:
        body = page.locator("body").inner_text()
        assert any(p in body for p in PAYLOADS), f"payload not visible as text on {where}"


def test_hostile_payloads_never_execute(page: Any, live: LiveGateway) -> None:
    ids = _hostile_traffic(live)
    login(page)
    page.goto("/settings")
    page.fill("#keys input[name=name]", ALL)
    page.click("#keys button.primary")
    page.wait_for_selector("#new-key")
    pages = [
        ("/", True),
        ("/?range=1h", True),
        ("/requests", True),
        ("/requests?q=%3Cscript%3E", True),
        ("/requests?user=" + "javascript%3Aalert(1)", True),
        (f"/requests/{ids['first']}", True),
        (f"/requests/{ids['second']}", True),
        ("/models", True),
        ("/users", True),
        ("/sessions", True),
        ("/settings", True),
    ]
    for path, expect in pages:
        page.goto(path)
        _assert_inert(page, path, expect)
    page.goto(f"/requests/{ids['first']}")
    detail_text = page.locator("body").inner_text()
    for payload in PAYLOADS:
        assert payload in detail_text
    assert "Authorization: Bearer <script>" in detail_text  # the output, as text
    assert page.locator("img.thumb").count() == 0  # neither javascript: nor SVG became an image
    # follow the data-built links: user (javascript: id) and session pages
    page.click(f"dl.kv a:text-is('{PAYLOADS[2]}')")
    page.wait_for_url("**/users/**")
    assert page.url.startswith(live.base_url + "/users/javascript%3A")
    _assert_inert(page, "user page")
    page.goto(f"/requests/{ids['first']}")
    page.locator("dl.kv dd a").nth(1).click()
    page.wait_for_url("**/sessions/**")
    _assert_inert(page, "session page")
    for link in page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))"):
        assert link.startswith(("/", "#")), link
    # the live feed inserts hostile rows through the DOM, never as HTML
    page.goto("/requests?live=1")
    time.sleep(0.3)
    send(live, ALL, PAYLOADS[1], **{"Helicone-User-Id": PAYLOADS[1]})
    page.locator("#request-rows tr.fresh").first.wait_for(timeout=10_000)
    _assert_inert(page, "live rows")
    assert not page.watch.dialogs, page.watch.dialogs
    assert not page.watch.csp, page.watch.csp
