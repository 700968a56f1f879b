"""The model pages in a real browser (Debian's headless Chromium via Playwright): a model's
page with its drill-through and sortable tables, picking models on the Models page for the
comparison view, and hostile model names and user ids shown as text, never run.

Records are written straight into the store (tests/models_support.py), so the figures are
known. One browser and one server for the module; each test gets a fresh context.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from browser_support import Watch, chromium_browser, screenshot
from conftest import LiveGateway, gateway_settings
from heliograph.store.engine import make_engine
from mock_upstream import MockUpstream
from models_support import IMG, SCRIPT, records, upstreams
from query_support import insert
from web_support import PASSWORD, add_user

EMAIL = "models-browser@example.com"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[LiveGateway]:
    tmp: Path = tmp_path_factory.mktemp("models-browser")
    settings = gateway_settings(
        tmp, f"sqlite:///{tmp / 'gw.db'}", mock.url, writer="off", upstreams=upstreams(mock.url)
    )
    gw = LiveGateway(settings).start()
    try:
        engine = make_engine(settings.sqlalchemy_url)
        insert(engine, records(gw.org.id))
        engine.dispose()
        add_user(gw, EMAIL)
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def page(browser: Any, live: LiveGateway) -> Iterator[Any]:
    context = browser.new_context(base_url=live.base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.watch = Watch(tab)
    try:
        yield tab
    finally:
        context.close()


def login(page: Any, start: str) -> None:
    page.goto(start)
    assert "/login" in page.url
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def figure(page: Any, label: str) -> str:
    """The value of a stat box on the page."""
    box = page.locator("a.stat", has=page.locator(f"span.label:text-is('{label}')"))
    return str(box.locator("span.value").inner_text()).strip()


def test_a_models_page_trends_drill_through_and_sorting(page: Any, live: LiveGateway) -> None:
    login(page, "/models?range=24h")
    page.click("#models a:text-is('llama3.2')")
    page.wait_for_url("**/models/llama3.2?**")
    assert page.locator("h1 .model-name").inner_text() == "llama3.2"
    assert figure(page, "Requests") == "6"
    assert figure(page, "Cold starts") == "1"
    for chart_id in ("chart-latency", "chart-ttft", "chart-tps", "chart-cold", "chart-histogram"):
        assert page.locator(f"svg#{chart_id}").is_visible(), chart_id
    assert page.locator("svg#chart-upstream-latency").is_visible()  # two upstreams overlaid
    served = page.locator("#served-by tbody tr td:first-child").all_inner_texts()
    assert served == ["ollama", "groq"]
    screenshot(page, "model-page")
    # sort the upstreams by requests, ascending: the URL carries it; again: the default back
    page.click("#served-by thead a:text('Requests')")
    page.wait_for_url("**up_sort=requests**")
    assert page.locator("#served-by tbody tr td:first-child").all_inner_texts() == [
        "groq",
        "ollama",
    ]
    assert page.locator("#served-by th[aria-sort=ascending]").inner_text().startswith("Requests")
    page.click("#served-by thead a:text('Requests')")
    page.wait_for_url(lambda url: "up_sort" not in url)
    assert page.locator("#served-by tbody tr td:first-child").all_inner_texts() == served
    # one upstream of the model
    page.click("#served-by tbody a:text-is('groq')")
    page.wait_for_url("**upstream=groq**")
    assert page.locator("h1 .upstream-name").inner_text() == "groq"
    assert figure(page, "Requests") == "2"
    screenshot(page, "model-upstream-page")
    # a histogram bar drills through to its requests
    page.goto("/models/llama3.2?range=24h")
    page.locator("svg#chart-histogram a").last.click()
    page.wait_for_url("**/requests?**")
    assert "min_latency=750" in page.url and "model=llama3.2" in page.url
    assert page.locator("#request-rows tr").count() == 4  # the 800 ms calls on Ollama
    assert not page.watch.dialogs and not page.watch.csp


def test_picking_models_to_compare(page: Any, live: LiveGateway) -> None:
    login(page, "/models?range=24h")
    sides = page.locator("#local-cloud tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.side)"
    )
    assert sides == ["local", "cloud"]
    assert page.locator("#both-ways tbody tr td:first-child").all_inner_texts() == ["llama3.2"]
    screenshot(page, "models-page")
    page.check("#models input[type=checkbox][value='llama3.2']")
    page.check("#models input[type=checkbox][value='gpt-4o']")
    page.click("button:text('Compare selected models')")
    page.wait_for_url("**/compare?**")
    assert "model=llama3.2" in page.url and "model=gpt-4o" in page.url
    rows = page.locator("#compare tbody tr")
    assert rows.count() == 2
    by_model = {
        r.get_attribute("data-model"): r.locator("td").all_inner_texts()
        for r in rows.all()
    }  # fmt: skip
    assert by_model["llama3.2"][1] == "6" and by_model["gpt-4o"][1] == "3"
    assert page.locator("section.charts svg.chart").count() == 8
    assert page.locator("svg#chart-cmp-latency polyline, svg#chart-cmp-latency circle").count() > 0
    screenshot(page, "compare")
    # the same traffic filter for both: only what the groq upstream served
    page.select_option("select[name=upstream]", "groq")
    page.click("form.compare-form button[type=submit]")
    page.wait_for_url("**upstream=groq**")
    counts = {
        r.get_attribute("data-model"): r.locator("td").nth(1).inner_text()
        for r in page.locator("#compare tbody tr").all()
    }
    assert counts == {"llama3.2": "2", "gpt-4o": "0"}
    # sorted by p50 latency, slowest first
    page.click("#compare thead a:text-is('p50')")
    page.wait_for_url("**sort=-p50_latency_ms**")
    order = page.locator("#compare tbody tr").evaluate_all("rows => rows.map(r => r.dataset.model)")
    assert order == ["llama3.2", "gpt-4o"]  # gpt-4o served nothing on groq: no latency, last
    assert not page.watch.dialogs and not page.watch.csp


def test_hostile_names_are_shown_as_text(page: Any, live: LiveGateway) -> None:
    login(page, "/models?range=24h")
    assert page.locator("#models a", has_text=SCRIPT).count() == 1
    page.goto("/models/" + quote(SCRIPT, safe="") + "?range=24h")
    assert page.locator("h1 .model-name").inner_text() == SCRIPT
    assert SCRIPT in page.locator("#model-users").inner_text()
    screenshot(page, "model-page-hostile")
    page.goto("/models/gpt-4o?range=24h")
    assert IMG in page.locator("#model-users").inner_text()
    assert page.locator("#recent-errors + .table-wrap tr[data-id]").count() == 1
    page.goto("/compare?range=24h&model=" + quote(SCRIPT, safe="") + "&model=" + quote(IMG))
    texts = page.locator("#compare tbody tr td:first-child").all_inner_texts()
    assert sorted(t.strip() for t in texts) == sorted([SCRIPT, IMG])
    page.goto("/?range=24h")
    assert page.locator("#local-cloud").is_visible()
    assert SCRIPT in page.locator("#top-models").inner_text()
    screenshot(page, "dashboard-local-cloud")
    assert not page.watch.dialogs, page.watch.dialogs
    assert not page.watch.csp, page.watch.csp
    assert page.evaluate("document.querySelectorAll('img[src=x], script:not([src])').length") == 0
