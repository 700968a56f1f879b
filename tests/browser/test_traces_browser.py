"""The trace waterfall in a real browser (Debian's Chromium, Playwright).

A trace with an agent span, a tool span, an ingested LLM call and two gateway calls made with
the agent's ``traceparent``: the Traces list (reached from the nav) opens the waterfall, whose
rows are in tree order and visibly indented by depth, whose bars start later for later spans,
whose attributes open on a click, whose hostile span name shows as text and never runs; an
LLM row's link opens its request page, which links back to the trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from browser_support import Watch, chromium_browser, screenshot
from conftest import LiveGateway, gateway_settings
from mock_upstream import MockUpstream
from trace_support import AGENT, HOSTILE, LLM, TOOL, TRACE, seed_trace
from web_support import PASSWORD, add_user

VIEWER = "viewer@example.com"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("traces-browser")
    gw = LiveGateway(gateway_settings(tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url)).start()
    try:
        add_user(gw, VIEWER, role="viewer")
        yield gw
    finally:
        gw.stop()


def test_waterfall_order_indent_and_click_through(browser: Any, live: LiveGateway) -> None:
    seeded = seed_trace(live)
    live.wait_records(3)
    context = browser.new_context(base_url=live.base_url, viewport={"width": 1500, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    watch = Watch(tab)
    tab.goto("/login")
    tab.fill("input[name=email]", VIEWER)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)

    tab.click("nav[aria-label=Main] >> text=Traces")
    tab.wait_for_url("**/traces**")
    assert tab.locator("#traces tbody tr").count() == 1
    screenshot(tab, "traces-list")
    tab.click(f"tr[data-trace='{TRACE}'] a")
    tab.wait_for_url(f"**/traces/{TRACE}**")

    order = tab.eval_on_selector_all(
        "#waterfall tbody tr", "rows => rows.map(r => [r.dataset.span, r.dataset.depth])"
    )
    assert [o[1] for o in order] == ["0", "1", "2", "1", "0"]
    assert [o[0] for o in order[:3]] == [AGENT, TOOL, LLM]
    # indentation is visible: each level's name starts further right than its parent's
    lefts = tab.eval_on_selector_all(
        "#waterfall tbody tr .span-title",
        "els => els.map(e => e.getBoundingClientRect().left)",
    )
    assert lefts[0] < lefts[1] < lefts[2] and lefts[3] == lefts[1] and lefts[4] == lefts[0]
    # bars: the tool starts after the agent, the gateway call after the tool
    xs = tab.eval_on_selector_all(
        "#waterfall tbody tr svg.span rect", "els => els.map(e => e.getBoundingClientRect().left)"
    )
    assert xs[0] <= xs[1] < xs[3]
    widths = tab.eval_on_selector_all(
        "#waterfall tbody tr svg.span rect", "els => els.map(e => e.getBoundingClientRect().width)"
    )
    assert widths[0] > widths[1] > 0
    # the hostile span name shows as text; attributes open on a click
    tool = tab.locator(f"tr[data-span='{TOOL}']")
    assert tool.locator(".span-title").inner_text() == f"tool {HOSTILE}"
    assert not tool.locator("dl.kv").is_visible()
    tool.locator("summary").click()
    assert tool.locator("dl.kv").is_visible()
    assert "search" in tool.locator("dl.kv").inner_text()
    screenshot(tab, "trace-waterfall")

    # the gateway call opens its request page, which links back here
    tab.click(f"tr[data-request='{seeded.gateway}'] a.span-title")
    tab.wait_for_url(f"**/requests/{seeded.gateway}")
    assert tab.locator("#trace-link").inner_text() == TRACE
    tab.click("#trace-link")
    tab.wait_for_url(f"**/traces/{TRACE}")
    assert tab.locator("#waterfall tbody tr").count() == 5
    assert watch.dialogs == [] and watch.csp == []
    context.close()
