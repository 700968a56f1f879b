"""The alerts page in a real browser (Debian's headless Chromium): an admin creates a
channel and a rule with hostile names through the forms, a bad rule is refused with the field
named, an evaluation fires the rule, and the page shows the rule's state, last value and the
history with the names as text (no markup, no script); the test button reports a delivery to
a real receiver, and the error of a channel that cannot be reached."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from browser_support import chromium_browser, screenshot
from conftest import LiveGateway, free_port, gateway_settings
from heliograph.alerts import evaluate
from heliograph.store.engine import make_engine
from mock_upstream import MockUpstream
from query_support import insert, row
from web_support import PASSWORD, add_user

EMAIL = "alerts@example.com"
XSS = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


class _Hook(BaseHTTPRequestHandler):
    got: list[bytes]

    def do_POST(self) -> None:
        self.got.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    got: list[bytes] = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), type("H", (_Hook,), {"got": got}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", got
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("alerts-browser")
    gw = LiveGateway(gateway_settings(tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url)).start()
    try:
        add_user(gw, EMAIL)
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


def _inert(page: Any) -> None:
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("[onerror], [onload]").count() == 0
    assert page.locator("script:not([src])").count() == 0


def test_alerts_page(page: Any, live: LiveGateway, receiver: tuple[str, list[bytes]]) -> None:
    url, got = receiver
    page.goto("/settings")
    page.click("#alerts a[href='/alerts']")
    page.wait_for_url("**/alerts")
    page.click("#new-channel summary")
    form = page.locator("#new-channel form")
    form.locator("input[name=name]").fill("hook " + XSS)
    form.locator("select[name=kind]").select_option("webhook")
    form.locator("input[name=url]").fill(url)
    form.locator("input[name=secret]").fill("a-signing-secret-1234")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/alerts")
    page.click("#new-channel summary")
    down = page.locator("#new-channel form")
    down.locator("input[name=name]").fill("down")
    down.locator("select[name=kind]").select_option("slack")
    down.locator("input[name=url]").fill(f"http://127.0.0.1:{free_port()}/services/x")
    down.locator("button[type=submit]").click()
    page.wait_for_url("**/alerts")
    assert page.locator("#channels .channel-name").first.inner_text() == "down"
    assert "a-signing-secret-1234" not in page.content()
    # a bad rule: refused, the field named, what was typed kept
    page.click("#new-rule summary")
    rule_form = page.locator("#new-rule form")
    rule_form.locator("input[name=name]").fill("errors " + XSS)
    rule_form.locator("select[name=metric]").select_option("error_rate")
    rule_form.locator("input[name=window]").fill("3w")
    rule_form.locator("input[name=threshold]").fill("0.5")
    rule_form.locator("input[name=min_requests]").fill("2")
    rule_form.locator("input[name=channels]").fill("hook " + XSS)
    rule_form.locator("button[type=submit]").click()
    error = page.locator("#alert-error").inner_text()
    assert error.startswith('Rule not saved: window: must be seconds or a duration like "5m"')
    rule_form = page.locator("#new-rule form")
    assert rule_form.locator("input[name=name]").input_value() == "errors " + XSS
    rule_form.locator("input[name=window]").fill("5m")
    rule_form.locator("button[type=submit]").click()
    page.wait_for_url("**/alerts")
    rule_row = page.locator("#rules tbody tr").first
    assert rule_row.locator(".rule-name").inner_text() == "errors " + XSS
    assert rule_row.locator(".state").inner_text() == "ok"
    # the rule fires on an evaluation
    now = int(time.time() * 1000)
    engine = make_engine(live.settings.sqlalchemy_url)
    try:
        insert(
            engine,
            [row(live.org.id, i, created_at=now - 30_000 + i, state="error") for i in range(3)],
        )
        assert (
            evaluate.evaluate(engine, live.settings.spool_dir, now, live.base_url).transitions == 1
        )
    finally:
        engine.dispose()
    page.goto("/alerts")
    rule_row = page.locator("#rules tbody tr").first
    assert rule_row.locator(".state").inner_text() == "firing"
    assert rule_row.locator("td:nth-child(5)").inner_text() == "1"
    event = page.locator("#events tbody tr").first
    assert event.locator(".event-rule").inner_text() == "errors " + XSS
    assert event.locator("td:nth-child(3)").inner_text() == "firing"
    assert event.locator("td:nth-child(5)").inner_text() == "error_rate > 0.5"
    assert "hook " + XSS + ": pending" in event.locator("td:nth-child(7)").inner_text()
    _inert(page)
    screenshot(page, "alerts")
    # the test button: delivered to the receiver, and the error of an unreachable channel
    page.locator("tr[data-channel]", has_text="hook").locator("button.test-send").click()
    assert page.locator("#test-result").inner_text() == f"Test notification sent to hook {XSS}."
    assert len(got) == 1 and b'"alert.test"' in got[0]
    page.locator("tr[data-channel]", has_text="down").locator("button.test-send").click()
    failed = page.locator("#test-result").inner_text()
    assert failed.startswith("Test notification to down failed: could not reach the receiver")
    _inert(page)
