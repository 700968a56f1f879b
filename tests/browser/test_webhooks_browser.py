"""The webhooks settings page in a real browser (Debian's Chromium, Playwright): an admin
creates an endpoint through the form and sees its secret once (never again after a reload,
only the masked hint), a bad filter is refused naming the field with the form kept, the
endpoint is turned off and on, a test event lands in its delivery log, and it is deleted (each
checked in the store). A receiver's hostile answer (the endpoint's last error and a delivery's
error) and a hostile URL and filter value show literally, never run (no dialog) and never break
the Content Security Policy. A viewer is refused the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import pytest
from sqlalchemy import Engine, update

from browser_support import Watch, chromium_browser, screenshot
from conftest import LiveGateway, gateway_settings
from heliograph.store import webhook_queue as queue
from heliograph.store import webhooks as store
from heliograph.store.engine import make_engine
from heliograph.store.schema_ops import webhook_deliveries, webhook_endpoints
from mock_upstream import MockUpstream
from web_support import PASSWORD, add_user

ADMIN, VIEWER = "admin@example.com", "viewer@example.com"
HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("webhooks-browser")
    gw = LiveGateway(gateway_settings(tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url)).start()
    try:
        add_user(gw, ADMIN)
        add_user(gw, VIEWER, role="viewer")
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def engine(live: LiveGateway) -> Iterator[Engine]:
    eng = make_engine(live.settings.sqlalchemy_url)
    try:
        yield eng
    finally:
        eng.dispose()


def open_page(browser: Any, live: LiveGateway, email: str) -> Any:
    context = browser.new_context(base_url=live.base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.watch = Watch(tab)
    tab.goto("/login")
    tab.fill("input[name=email]", email)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)
    return tab


def nothing_ran(page: Any) -> None:
    assert page.watch.dialogs == [] and page.watch.csp == []
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("script", has_text="alert").count() == 0


def test_admin_manages_endpoints(browser: Any, live: LiveGateway, engine: Engine) -> None:
    tab = open_page(browser, live, ADMIN)
    try:
        tab.goto("/settings/webhooks")
        assert tab.locator("#webhooks-empty").count() == 1
        url = "http://127.0.0.1:9/hook/" + HOSTILE[0].replace(" ", "")
        form = tab.locator("#new-webhook form")
        # a misspelt filter field is refused, naming it, and what was typed is kept
        form.locator("input[name=name]").fill("orders")
        form.locator("input[name=url]").fill(url)
        form.locator("input[name=filter]").fill("modle=gpt-4o")
        form.locator("button[type=submit]").click()
        assert "filter.modle" in tab.locator("#webhook-error").inner_text()
        assert tab.locator("#new-webhook input[name=url]").input_value() == url
        assert store.list_endpoints(engine, live.org.id) == []
        form = tab.locator("#new-webhook form")
        form.locator("input[name=filter]").fill("property.team=" + HOSTILE[1])
        form.locator("input[name=include_bodies]").check()
        form.locator("button[type=submit]").click()
        secret = tab.locator("#new-secret code.secret").inner_text()
        assert secret.startswith("whsec_")
        [made] = store.list_endpoints(engine, live.org.id, with_secret=True)
        assert made["secret"] == secret and made["url"] == url and made["include_bodies"]
        assert made["filter"] == {"property.team": HOSTILE[1]}
        # a receiver's hostile answer, as the sender would record it
        queue.enqueue_test(engine, live.org.id, made["id"])
        with engine.begin() as conn:
            conn.execute(
                update(webhook_endpoints).values(
                    last_error=f"HTTP 500: {HOSTILE[0]}", last_error_at=1
                )
            )
            conn.execute(update(webhook_deliveries).values(last_error=f"HTTP 500: {HOSTILE[1]}"))
        tab.goto("/settings/webhooks")
        row = tab.locator(f'tr[data-endpoint="{made["id"]}"]')
        assert secret not in tab.content()
        assert row.locator("code").nth(0).inner_text() == url
        assert row.locator("td").nth(4).inner_text() == "whsec_…" + secret[-4:]
        shown = row.locator("td").nth(2).inner_text()  # the Requests page's URL spelling
        assert shown == "property.team=" + quote_plus(HOSTILE[1])
        assert f"HTTP 500: {HOSTILE[0]}" in tab.locator(".last-error").inner_text()
        tab.locator("details summary", has_text="Recent deliveries").click()
        assert f"HTTP 500: {HOSTILE[1]}" in tab.locator("table.deliveries").inner_text()
        nothing_ran(tab)
        # off, on, a test event, delete: each in the store
        row.locator("button", has_text="Disable").click()
        assert store.get_endpoint(engine, live.org.id, made["id"])["enabled"] is False  # type: ignore[index]
        assert tab.locator(f'tr[data-endpoint="{made["id"]}"] .status').inner_text() == "off"
        tab.locator(f'tr[data-endpoint="{made["id"]}"] button', has_text="Enable").click()
        assert store.get_endpoint(engine, live.org.id, made["id"])["enabled"] is True  # type: ignore[index]
        tab.locator(f'tr[data-endpoint="{made["id"]}"] button', has_text="Send test event").click()
        log = queue.deliveries(engine, live.org.id, made["id"])
        assert [d["event"] for d in log] == [queue.TEST_EVENT, queue.TEST_EVENT]
        assert tab.locator(f'tr[data-endpoint="{made["id"]}"] td.num').nth(0).inner_text() == "2"
        screenshot(tab, "settings-webhooks")
        nothing_ran(tab)
        tab.locator(f'tr[data-endpoint="{made["id"]}"] button', has_text="Delete").click()
        assert store.list_endpoints(engine, live.org.id) == []
        assert tab.locator("#webhooks-empty").count() == 1
        nothing_ran(tab)
    finally:
        tab.context.close()


def test_viewer_is_refused(browser: Any, live: LiveGateway) -> None:
    tab = open_page(browser, live, VIEWER)
    try:
        response = tab.goto("/settings/webhooks")
        assert response.status == 403
        tab.goto("/settings")
        assert tab.locator("#webhooks").count() == 0
    finally:
        tab.context.close()
