"""The Requests page and the request page in a real browser (Debian's Chromium, Playwright):
the column picker, live mode's marking of new rows, newer/older links within a filter, and a
replay of a cloud request on a local Ollama model with its side-by-side comparison.

One server (an OpenAI-like mock declared as cloud, and a mock Ollama) for the module.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from browser_support import chromium_browser, screenshot
from conftest import LiveGateway, gateway_settings
from mock_ollama import MockOllama
from mock_upstream import MockUpstream
from web_support import PASSWORD, add_user, send

EMAIL = "admin@example.com"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture(scope="module")
def ollama() -> Iterator[MockOllama]:
    server = MockOllama().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream, ollama: MockOllama
) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("requests-browser")
    upstreams = {
        "openai": {"url": mock.url, "local": False},
        "ollama": {"url": ollama.base_url, "protocol": "ollama"},
    }
    gw = LiveGateway(
        gateway_settings(tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url, upstreams=upstreams)
    ).start()
    try:
        add_user(gw, EMAIL)
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def page(browser: Any, live: LiveGateway) -> Iterator[Any]:
    context = browser.new_context(base_url=live.base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    tab.dialogs = dialogs
    try:
        yield tab
    finally:
        context.close()


def login(page: Any, start: str) -> None:
    page.goto(start)
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def headers(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all("#requests-table thead th", "t => t.map(e => e.dataset.col)")
    )


def test_column_picker_keeps_its_choice_across_pages(page: Any, live: LiveGateway) -> None:
    for i in range(3):
        send(live, f"picker {i}")
    send(live, "picker failure", **{"x-mock-status": "500"})
    live.wait_records(4)
    login(page, "/requests?limit=2")
    assert "session" in headers(page) and "error" not in headers(page)
    page.click("details.columns summary")
    page.uncheck("form.column-picker input[value=session]")
    page.uncheck("form.column-picker input[value=prompt]")
    page.check("form.column-picker input[value=error]")
    page.check("form.column-picker input[value=stream]")
    assert page.locator("form.column-picker").is_visible()
    screenshot(page, "requests-column-picker-open")
    page.click("form.column-picker button[type=submit]")
    page.wait_for_url(re.compile(r"cols="))
    assert "limit=2" in page.url
    shown = headers(page)
    assert "session" not in shown and "prompt" not in shown
    assert shown[-2:] == ["stream", "error"] and "tps" in shown and "where" in shown
    first = page.locator("#request-rows tr").first
    assert first.locator("td").count() == len(shown)
    assert first.locator("td").nth(shown.index("error")).inner_text().strip() != ""
    assert first.locator("td").nth(shown.index("where")).inner_text() == "cloud"
    screenshot(page, "requests-column-picker")
    page.click("nav.pager a[rel=next]")
    page.wait_for_url(re.compile(r"cursor="))
    assert headers(page) == shown  # the next page keeps the columns
    tps = page.locator("#request-rows tr").first.locator("td").nth(shown.index("tps"))
    assert tps.inner_text().endswith("tok/s")
    page.fill("form.filters input[name=model]", "gpt-4o-mini")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"model=gpt-4o-mini"))
    assert headers(page) == shown  # so does filtering
    assert not page.dialogs


def test_live_mode_marks_only_rows_that_arrived_after_it_was_switched_on(
    page: Any, live: LiveGateway
) -> None:
    send(live, "already there")
    live.wait_records(1)
    login(page, "/requests?cols=time,status,model,where,tps,prompt")
    before_toggle = f"before-{uuid.uuid4().hex[:8]}"
    shown_before = page.locator("#request-rows tr").count()
    send(live, before_toggle)  # stored after the page was made, before live is on
    time.sleep(0.5)
    page.check("#live-toggle")
    page.wait_for_selector("#requests-table[data-live=ready]", state="attached")
    early = page.locator("#request-rows tr", has_text=before_toggle)
    early.wait_for()
    assert "fresh" not in (early.get_attribute("class") or "")
    assert page.locator("#request-rows tr").count() == shown_before + 1
    after = [f"after-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    for text in after:
        send(live, text)
    for text in after:
        page.locator("#request-rows tr.fresh", has_text=text).wait_for()
    marked = page.locator("#request-rows tr.fresh").all_inner_texts()
    assert len(marked) == 2 and all(any(t in m for t in after) for m in marked)
    row = page.locator("#request-rows tr.fresh").first
    assert row.locator("td").count() == 6  # the chosen columns, built by the script
    assert row.locator("span.badge.cloud").inner_text() == "cloud"
    screenshot(page, "requests-live-marking")
    # Switched off and on again: what arrived before is no longer new.
    page.uncheck("#live-toggle")
    page.check("#live-toggle")
    page.wait_for_selector("#requests-table[data-live=ready]", state="attached")
    assert page.locator("#request-rows tr.fresh").count() == 0
    assert not page.dialogs


def test_newer_and_older_links_stay_in_the_filter(page: Any, live: LiveGateway) -> None:
    tag = uuid.uuid4().hex[:6]
    for i, model in enumerate(["gpt-4o", "gpt-4o-mini", "gpt-4o"]):
        send(live, f"walk {tag} {i}", model)
    live.wait_records(2, model="gpt-4o")
    login(page, f"/requests?model=gpt-4o&q=walk+{tag}")
    rows = page.locator("#request-rows tr")
    assert rows.count() == 2
    newest, oldest = rows.nth(0).get_attribute("data-id"), rows.nth(1).get_attribute("data-id")
    rows.nth(0).locator("td.preview a").click()
    page.wait_for_url(f"**/requests/{newest}?*")
    assert page.locator("#newer-link").count() == 0
    page.click("#older-link")
    page.wait_for_url(f"**/requests/{oldest}?*")
    assert "model=gpt-4o" in page.url
    assert "walk" in page.locator(".msg.role-user").inner_text()
    assert page.locator("#older-link").count() == 0  # the gpt-4o-mini one is skipped
    screenshot(page, "request-newer-older")
    page.click("#newer-link")
    page.wait_for_url(f"**/requests/{newest}?*")
    page.click("text=Requests (filtered)")
    page.wait_for_url(re.compile(r"/requests\?model=gpt-4o"))
    assert page.locator("#request-rows tr").count() == 2


def test_replay_a_cloud_request_on_local_ollama(
    page: Any, live: LiveGateway, ollama: MockOllama
) -> None:
    rid = send(live, f"replay me {uuid.uuid4().hex[:6]}")
    live.wait_records(1)
    login(page, f"/requests/{rid}")
    page.wait_for_selector("#replay-form")
    # Bad JSON first: the edit stays, the error says where.
    page.fill("#replay-body", '{"model": "gpt-4o-mini",\n "messages": [}')
    page.click("#replay-form button[type=submit]")
    page.wait_for_selector("#replay-error")
    assert page.url.endswith(f"/requests/{rid}/replay#replay")  # back at the form
    assert page.locator("#replay-error").count() == 1
    assert "line 2, column" in page.locator("#replay-error").inner_text()
    assert page.input_value("#replay-body") == '{"model": "gpt-4o-mini",\n "messages": [}'
    screenshot(page, "replay-invalid-json")
    page.goto(f"/requests/{rid}")
    page.fill("#replay-key", "sk-typed-for-openai")
    page.select_option("#replay-target", "ollama")
    assert page.input_value("#replay-key") == ""  # a key typed for OpenAI never moves
    assert page.locator("#replay-key-upstream").inner_text() == "ollama"
    page.fill("#replay-model", "llama3.2")
    page.click("#replay-form button[type=submit]")
    page.wait_for_selector("#comparison")
    cells = page.locator("#comparison tr[data-row=upstream] td").all_inner_texts()
    assert cells[:2] == ["openai", "ollama"]
    assert page.locator("#comparison tr[data-row=where] td").all_inner_texts()[:2] == [
        "cloud",
        "local",
    ]
    assert page.locator("#comparison tr[data-row=model] td").nth(1).inner_text() == "llama3.2"
    tokens = page.locator("#comparison tr[data-row=total_tokens] td").all_inner_texts()
    assert tokens[0].isdigit() and tokens[1].isdigit() and tokens[2].endswith("%")
    assert page.locator("#not-stored").count() == 0
    assert "Hello from the mock Ollama." in page.locator(".replay-outputs").inner_text()
    assert ollama.requests[-1].json["model"] == "llama3.2"
    assert "authorization" not in ollama.requests[-1].headers
    screenshot(page, "replay-comparison")
    page.click("#new-record")
    page.wait_for_selector("#replay-of")
    assert page.locator("#replay-of").inner_text() == rid
    assert "ollama" in page.locator(".head").inner_text()
    screenshot(page, "replay-record")
    page.click("#replay-of")
    page.wait_for_selector("#replays table")
    assert page.locator("#replays tbody tr").count() == 1
    assert "llama3.2" in page.locator("#replays tbody tr").inner_text()
    screenshot(page, "request-with-replays")
    # Another request: choosing Ollama now suggests the model it served (llama3.2).
    other = send(live, "suggest a model")
    live.wait_records(1)
    page.goto(f"/requests/{other}")
    assert page.input_value("#replay-model") == "gpt-4o-mini"
    page.select_option("#replay-target", "ollama")
    assert page.input_value("#replay-model") == "llama3.2"
    assert page.get_attribute("#replay-model", "list") == "replay-models-ollama"
    page.select_option("#replay-target", "openai")
    assert page.input_value("#replay-model") == "gpt-4o-mini"
    page.fill("#replay-model", "my-own-choice")
    page.select_option("#replay-target", "ollama")
    assert page.input_value("#replay-model") == "my-own-choice"  # a typed model is kept
    assert not page.dialogs


def test_hostile_model_names_and_errors_stay_text(page: Any, live: LiveGateway) -> None:
    """A model name that is markup comes back in Ollama's error message: both shown as text
    in the new columns, in live rows built by the script and in the server's table."""
    hostile = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
    login(page, "/requests?cols=time,status,model,where,error,stream&live=1")
    page.wait_for_selector("#requests-table[data-live=ready]", state="attached")
    resp = httpx.post(
        f"{live.base_url}/ollama/{live.org.write_key}/api/chat",
        json={"model": hostile, "messages": [{"role": "user", "content": "hi"}], "stream": False},
        timeout=15,
    )
    assert resp.status_code == 404
    row = page.locator("#request-rows tr.fresh").first
    row.wait_for()
    cells = row.locator("td")
    assert headers(page) == ["time", "status", "where", "model", "stream", "error"]
    assert cells.nth(3).inner_text() == hostile  # model
    error = cells.nth(5).inner_text()  # the error message (Ollama quotes the name), as text
    assert "<script>alert(1)</script>" in error and "<img src=x onerror=alert(1)>" in error
    assert cells.nth(2).inner_text() == "local"
    assert page.locator("#request-rows img, #request-rows script").count() == 0
    screenshot(page, "requests-hostile-live")
    page.reload()
    served = page.locator("#request-rows tr").first.locator("td")
    assert served.nth(5).inner_text() == error and served.nth(3).inner_text() == hostile
    assert page.locator("#request-rows img, #request-rows script").count() == 0
    assert not page.dialogs
