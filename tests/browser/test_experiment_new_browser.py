"""Starting an experiment from the dashboard in a real browser (Debian's Chromium,
Playwright): the New experiment form filled in (a prompt label and a model variant, a typed
evaluator, a hostile name), its estimate shown with the inputs kept, Start, and the new
experiment's page following the run live until it completes. The run is the job process's
work: here the queued job is run in a thread of this process against the live gateway and
its mock upstream (``tests/experiment_engine_support.py``), while the page polls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from browser_support import Watch, chromium_browser, screenshot
from conftest import LiveGateway
from experiment_engine_support import add_dataset, add_prompt, live_store, run_job
from heliograph.store import experiments as experiment_store
from heliograph.store.engine import make_engine
from mock_upstream import MockUpstream
from web_support import PASSWORD, add_user

ADMIN = "admin@example.com"
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture
def live(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    mock.reset()
    with live_store(f"sqlite:///{tmp_path / 'gw.db'}", tmp_path, mock) as gw:
        add_user(gw, ADMIN)
        engine = make_engine(gw.settings.sqlalchemy_url)
        try:
            add_prompt(
                engine, gw.org.id, "greet", "Say hi to {{who}}", "Greet {{who}}", upstream="mock"
            )
            items = [{"inputs": {"who": f"person {i}"}, "expected": "Hello"} for i in range(3)]
            add_dataset(engine, gw.org.id, "people", items)
        finally:
            engine.dispose()
        yield gw


def test_new_experiment_estimate_start_and_watch(browser: Any, live: LiveGateway) -> None:
    from playwright.sync_api import expect  # as browser_support: only once Chromium is there

    context = browser.new_context(base_url=live.base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    watch = Watch(tab)
    try:
        tab.goto("/login")
        tab.fill("input[name=email]", ADMIN)
        tab.fill("input[name=password]", PASSWORD)
        tab.click("button[type=submit]")
        tab.wait_for_url(lambda url: "/login" not in url)
        tab.goto("/experiments")
        tab.click("#new-experiment summary")
        tab.fill("input[name=name]", f"greeting {HOSTILE}")
        tab.select_option("select[name=dataset]", "people")
        tab.select_option("select[name='v1.prompt']", "prompt:greet@production")
        tab.fill("input[name='v2.model']", "model:mock/gpt-4o-mini")
        tab.fill("input[name='v2.params']", '{"temperature": 0}')
        tab.fill("textarea[name=evaluators]", "contains:Hello")
        tab.click("button[name=step][value=estimate]")
        estimate = tab.locator("#estimate")
        expect(estimate).to_contain_text("6 cells (3 items \u00d7 2 variants")
        expect(estimate).to_contain_text("Estimated cost:")
        assert tab.input_value("input[name=name]") == f"greeting {HOSTILE}"  # inputs kept
        assert tab.input_value("input[name='v2.model']") == "model:mock/gpt-4o-mini"
        screenshot(tab, "experiment-new-estimate")
        tab.click("#start-experiment")
        tab.wait_for_url(lambda url: "/experiments/" in url)
        exp_id = tab.url.rstrip("/").rsplit("/", 1)[1]
        expect(tab.locator("h1")).to_have_text(f"greeting {HOSTILE}")
        expect(tab.locator("#progress-status")).to_have_text("queued")
        assert tab.locator("#cancel").count() == 1
        runner = threading.Thread(target=run_job, args=(live, exp_id))
        runner.start()
        try:
            expect(tab.locator("#progress-status")).to_have_text("completed", timeout=30_000)
        finally:
            runner.join(60)
        assert tab.locator("#progress").get_attribute("data-running") == "false"  # reloaded
        assert tab.locator("#cancel").count() == 0
        assert tab.locator("#matrix tbody tr").count() == 3
        expect(tab.locator("#progress-text")).to_contain_text("6 done, 0 failed of 6 cells")
        engine = make_engine(live.settings.sqlalchemy_url)
        try:
            row = experiment_store.get_experiment(engine, exp_id, live.org.id)
        finally:
            engine.dispose()
        assert row is not None and row["status"] == "completed" and row["cells_done"] == 6
        screenshot(tab, "experiment-new-completed")
        assert watch.dialogs == [] and watch.csp == []
        assert tab.locator("img[src=x]").count() == 0
    finally:
        context.close()
