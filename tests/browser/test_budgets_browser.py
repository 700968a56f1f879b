"""The budgets settings page in a real browser (Debian's Chromium, Playwright).

An admin creates a budget through the form with a hostile name and property value, which
show literally and never run (no dialog, no injected element, no CSP report); bad input is
refused with the checker's message naming the field (400) and what was typed kept; an edit
changes the limit and keeps the usage; a delete asks first and removes only on the second
post. A config.toml budget shows without edit or delete, with the API's wording. A viewer sees
the table and no forms, and a viewer's post is forbidden. One real request through the gateway
in a budget's scope shows as spent once the writer stored it. Each change is checked in the
store.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from browser_support import Watch, chromium_browser, screenshot
from conftest import LiveGateway, gateway_settings
from heliograph.budgets.rules import NUSD_PER_USD, check_budget, config_owned
from heliograph.store import budgets as store
from heliograph.store.engine import make_engine
from mock_upstream import MockUpstream
from web_support import PASSWORD, add_user, csrf_of, send

ADMIN, VIEWER = "admin@example.com", "viewer@example.com"
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_VALUE = '"><script>alert(1)</script>'
HERE = "/settings/budgets"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream) -> Iterator[LiveGateway]:
    tmp = tmp_path_factory.mktemp("budgets-browser")
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
        for row in store.list_budgets(eng, live.org.id):  # each test starts with none
            store.delete_budget(eng, live.org.id, row["id"])
        live.app.web.state.budgets.load()
    finally:
        eng.dispose()


def open_page(browser: Any, live: LiveGateway, email: str) -> Any:
    context = browser.new_context(base_url=live.base_url, viewport={"width": 1500, "height": 900})
    context.set_default_timeout(10_000)
    tab = context.new_page()
    tab.watch = Watch(tab)
    tab.goto("/login")
    tab.fill("input[name=email]", email)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(lambda url: "/login" not in url)
    return tab


def nothing_ran(tab: Any) -> None:
    assert tab.watch.dialogs == [] and tab.watch.csp == []
    assert tab.locator("img[src=x]").count() == 0
    assert tab.locator("script", has_text="alert").count() == 0


def submit(tab: Any, form: Any) -> int:
    """Click the form's button; the status of the POST's own answer."""
    with tab.expect_response(lambda r: r.request.method == "POST") as answer:
        form.locator("button[type=submit]").click()
    status: int = answer.value.status
    tab.wait_for_load_state()
    return status


def add_config_budget(engine: Engine, org_id: str, name: str) -> dict[str, Any]:
    doc = {"name": name, "window": "24h", "limit_requests": 100, "action": "alert"}
    return store.create_budget(engine, org_id, check_budget(doc), "config.toml", source="config")


def test_admin_creates_edits_and_deletes(browser: Any, live: LiveGateway, engine: Engine) -> None:
    tab = open_page(browser, live, ADMIN)
    try:
        tab.goto("/settings")
        tab.locator("#budgets a", has_text="Budgets").click()
        tab.wait_for_url(f"**{HERE}")
        assert tab.locator("#budgets-empty").count() == 1
        form = tab.locator("#budget-new-form")
        form.locator("input[name=name]").fill(HOSTILE_NAME)
        form.locator("input[name=property_name]").fill("team")
        form.locator("input[name=property_value]").fill(HOSTILE_VALUE)
        form.locator("input[name=model]").fill("gpt-4o*")
        form.locator("select[name=window]").select_option("day")
        form.locator("input[name=timezone]").fill("Europe/Berlin")
        form.locator("select[name=limit_kind]").select_option("usd")
        form.locator("input[name=limit_amount]").fill("fifty")
        # an amount that is no number: refused naming the field, everything typed kept
        assert submit(tab, form) == 400
        assert "limit_usd: a number >= 0" in tab.locator("#budget-error").inner_text()
        form = tab.locator("#budget-new-form")
        assert form.locator("input[name=name]").input_value() == HOSTILE_NAME
        assert form.locator("input[name=property_value]").input_value() == HOSTILE_VALUE
        assert form.locator("select[name=window]").input_value() == "day"
        assert form.locator("input[name=limit_amount]").input_value() == "fifty"
        # the checker's own message for a bad time zone
        form.locator("input[name=limit_amount]").fill("50")
        form.locator("input[name=timezone]").fill("Mars/Olympus")
        assert submit(tab, form) == 400
        assert "timezone: an IANA time zone name" in tab.locator("#budget-error").inner_text()
        screenshot(tab, "settings-budgets-form-error")
        assert store.list_budgets(engine, live.org.id) == []
        nothing_ran(tab)
        form = tab.locator("#budget-new-form")
        form.locator("input[name=timezone]").fill("Europe/Berlin")
        assert submit(tab, form) == 303
        [made] = store.list_budgets(engine, live.org.id)
        assert made["name"] == HOSTILE_NAME and made["limit_amount"] == 50 * NUSD_PER_USD
        assert made["scope"] == {"property": {"team": HOSTILE_VALUE}, "model": "gpt-4o*"}
        assert made["timezone"] == "Europe/Berlin" and made["thresholds"] == [50, 80, 100]
        assert live.app.web.state.budgets.get(live.org.id, made["id"]) is not None  # enforced now
        row = tab.locator(f'tr[data-budget="{made["id"]}"]')
        assert row.locator(".budget-name").inner_text() == HOSTILE_NAME
        scope = row.locator(".budget-scope").inner_text()
        assert scope == f"property team = {HOSTILE_VALUE} · model gpt-4o*"
        assert row.locator(".budget-limit").inner_text() == "$50.00"
        assert "calendar day" in row.inner_text() and "Europe/Berlin" in row.inner_text()
        assert row.locator(".percent").inner_text() == "0.0%"
        assert row.locator(".spent").inner_text() == "$0"
        assert row.locator(".thresholds .badge").all_inner_texts() == ["50%", "80%", "100%"]
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+in \d+ ", row.inner_text())
        nothing_ran(tab)
        # edit: the form comes prefilled; a new limit replaces the old one
        row.locator("a", has_text="Edit").click()
        form = tab.locator("#budget-edit-form")
        assert form.locator("input[name=name]").input_value() == HOSTILE_NAME
        assert form.locator("input[name=property_value]").input_value() == HOSTILE_VALUE
        assert form.locator("input[name=limit_amount]").input_value() == "50"
        assert tab.locator("#budget-new-form").count() == 0
        form.locator("input[name=limit_amount]").fill("75.5")
        assert submit(tab, form) == 303
        changed = store.get_budget(engine, live.org.id, made["id"])
        assert changed is not None and changed["limit_amount"] == 75_500_000_000
        row = tab.locator(f'tr[data-budget="{made["id"]}"]')
        assert row.locator(".budget-limit").inner_text() == "$75.50"
        screenshot(tab, "settings-budgets")
        nothing_ran(tab)
        # delete: the first post only asks
        row.locator("button", has_text="Delete").click()
        assert tab.locator("#confirm h2").inner_text() == f"Delete budget {HOSTILE_NAME}?"
        assert len(store.list_budgets(engine, live.org.id)) == 1
        tab.locator("#confirm-delete").click()
        tab.wait_for_url(f"**{HERE}")
        assert store.list_budgets(engine, live.org.id) == []
        assert live.app.web.state.budgets.get(live.org.id, made["id"]) is None
        assert tab.locator("#budgets-empty").count() == 1
        nothing_ran(tab)
    finally:
        tab.context.close()


def test_config_budget_is_read_only(browser: Any, live: LiveGateway, engine: Engine) -> None:
    made = add_config_budget(engine, live.org.id, "from-config")
    tab = open_page(browser, live, ADMIN)
    try:
        tab.goto(HERE)
        row = tab.locator(f'tr[data-budget="{made["id"]}"]')
        assert row.locator(".budget-limit").inner_text() == "100 requests"
        assert "Defined in config.toml; change it there." in row.inner_text()
        assert row.locator("a", has_text="Edit").count() == 0
        assert row.locator("button").count() == 0
        answer = tab.goto(f"{HERE}/{made['id']}/edit")
        assert answer.status == 409
        assert tab.locator("#budget-error").inner_text() == config_owned("from-config")
        assert tab.locator("#budget-edit-form").count() == 0
        token = csrf_of(tab.content())
        answer = tab.request.post(f"{HERE}/{made['id']}/delete", form={"csrf_token": token})
        assert answer.status == 409
        answer = tab.request.post(
            f"{HERE}/{made['id']}/delete", form={"csrf_token": token, "confirm": "delete"}
        )
        assert answer.status == 409
        assert store.get_budget(engine, live.org.id, made["id"]) is not None
    finally:
        tab.context.close()


def test_viewer_sees_the_table_but_no_forms(
    browser: Any, live: LiveGateway, engine: Engine
) -> None:
    made = add_config_budget(engine, live.org.id, "team")
    doc = {"name": "mine", "window": "1h", "limit_tokens": 1000, "action": "block"}
    mine = store.create_budget(engine, live.org.id, check_budget(doc), None)
    tab = open_page(browser, live, VIEWER)
    try:
        answer = tab.goto(HERE)
        assert answer.status == 200
        names = tab.locator("#budgets .budget-name").all_inner_texts()
        assert names == ["mine", "team"]
        assert tab.locator(f'tr[data-budget="{made["id"]}"] .percent').inner_text() == "0.0%"
        assert tab.locator("#viewer-note").count() == 1
        assert tab.locator("main form").count() == 0
        assert tab.locator("main a", has_text="Edit").count() == 0
        assert tab.goto(f"{HERE}/{mine['id']}/edit").status == 403
        tab.goto(HERE)
        token = csrf_of(tab.content())  # the logout form's
        for target, form in (
            (HERE, {"name": "x", "window": "1h", "limit_kind": "requests", "limit_amount": "1"}),
            (f"{HERE}/{mine['id']}", {"name": "x"}),
            (f"{HERE}/{mine['id']}/delete", {"confirm": "delete"}),
        ):
            answer = tab.request.post(target, form={**form, "csrf_token": token})
            assert answer.status == 403, target
        assert len(store.list_budgets(engine, live.org.id)) == 2
        tab.goto("/settings")
        assert tab.locator("#budgets a[href='/settings/budgets']").count() == 1
    finally:
        tab.context.close()


def test_real_request_shows_as_spent(browser: Any, live: LiveGateway, engine: Engine) -> None:
    tab = open_page(browser, live, ADMIN)
    try:
        tab.goto(HERE)
        form = tab.locator("#budget-new-form")
        form.locator("input[name=name]").fill("alice tokens")
        form.locator("input[name=user_id]").fill("alice")
        form.locator("select[name=window]").select_option("hours")
        form.locator("input[name=window_hours]").fill("6")
        form.locator("select[name=limit_kind]").select_option("tokens")
        form.locator("input[name=limit_amount]").fill("200,000")
        assert submit(tab, form) == 303
        [made] = store.list_budgets(engine, live.org.id)
        assert made["window"] == "6h" and made["limit_amount"] == 200_000
        row = tab.locator(f'tr[data-budget="{made["id"]}"]')
        assert row.locator(".budget-scope").inner_text() == "user alice"
        assert row.locator(".budget-limit").inner_text() == "200,000 tokens"
        assert row.locator(".spent").inner_text() == "0 tokens"
        doc = {"name": "alice requests", "window": "day", "limit_requests": 1, "action": "alert"}
        doc["scope"], doc["thresholds"] = {"user_id": "alice"}, [50, 100, 200]
        counted = store.create_budget(engine, live.org.id, check_budget(doc), None)
        live.app.web.state.budgets.load()
        rid = send(live, "hello budget", **{"helicone-user-id": "alice"})
        assert [r["id"] for r in live.wait_records(1)] == [rid]
        deadline = time.monotonic() + 10
        spent = 0
        while time.monotonic() < deadline:
            tab.goto(HERE)
            text = tab.locator(f'tr[data-budget="{made["id"]}"] .spent').inner_text()
            spent = int(text.removesuffix(" tokens").replace(",", ""))
            if spent > 0:
                break
            time.sleep(0.2)
        assert spent > 0
        assert tab.locator(f'tr[data-budget="{made["id"]}"] .budget-meter.ok').count() == 1
        # one request of an alert budget of one: at its limit, its first two thresholds crossed
        row = tab.locator(f'tr[data-budget="{counted["id"]}"]')
        assert row.locator(".budget-limit").inner_text() == "1 request"
        assert row.locator(".spent").inner_text() == "1 request"
        assert row.locator(".remaining").inner_text() == "0 requests"
        assert row.locator(".percent").inner_text() == "100.0%"
        assert row.locator(".budget-meter.over").count() == 1
        assert row.locator(".thresholds .crossed").all_inner_texts() == ["50% ✓", "100% ✓"]
        assert row.locator(".thresholds .badge").nth(2).inner_text() == "200%"
        screenshot(tab, "settings-budgets-usage")
        nothing_ran(tab)
    finally:
        tab.context.close()


class BrokenLedger:
    async def usage(self, budget_id: str, span: Any) -> tuple[int, int]:
        raise ConnectionError("ledger down")


def test_usage_unavailable_when_the_ledger_fails(
    browser: Any, live: LiveGateway, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = add_config_budget(engine, live.org.id, "counted")
    monkeypatch.setattr(live.app.web.state, "ledger", BrokenLedger())
    tab = open_page(browser, live, VIEWER)
    try:
        assert tab.goto(HERE).status == 200
        row = tab.locator(f'tr[data-budget="{made["id"]}"]')
        assert row.locator(".usage-unavailable").inner_text() == "usage unavailable"
        assert row.locator(".budget-limit").inner_text() == "100 requests"
    finally:
        tab.context.close()
