"""The budgets settings page over HTTP, on SQLite and PostgreSQL: the form reaches the store
through the API's checker, a real request's usage shows, edits keep usage, deletes take a
confirmation, config.toml budgets stay read-only; and the form's own parsing and wording."""

from __future__ import annotations

import re

import httpx
import pytest

from conftest import LiveGateway
from heliograph.budgets.rules import Budget, BudgetError, check_budget, config_owned, unknown_key
from heliograph.store import budgets as store
from heliograph.store.engine import make_engine
from heliograph.web import budget_form as bf
from heliograph.web.budgets_page import _level
from web_support import WebClient, add_user, send

HERE = "/settings/budgets"
FORM = {
    "name": "bob",
    "user_id": "bob",
    "model": "gpt-4o*",
    "window": "24h",
    "limit_kind": "tokens",
    "limit_amount": "200,000",
    "action": "block",
    "thresholds": "50, 80, 100",
}


def _row(html: str, budget_id: str) -> str:
    match = re.search(rf'<tr data-budget="{budget_id}".*?</tr>', html, re.S)
    assert match, "no row for the budget"
    return match.group(0)


def test_page_manages_budgets_on_both_dialects(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    add_user(gw, "admin@example.com")
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        with WebClient(gw, "admin@example.com") as web:
            bad = web.post(HERE, {**FORM, "key_id": "no-such-key"})
            assert bad.status_code == 400
            assert "scope.key_id: no key with id &#39;no-such-key&#39;" in bad.text
            assert 'value="200,000"' in bad.text
            made = web.post(HERE, FORM)
            assert made.status_code == 303
            [row] = store.list_budgets(engine, gw.org.id)
            assert row["limit_amount"] == 200_000 and row["scope"]["user_id"] == "bob"
            send(gw, "counted", model="gpt-4o-mini", **{"helicone-user-id": "bob"})
            gw.wait_records(1)
            shown = _row(web.get(HERE).text, row["id"])
            assert "user bob · model gpt-4o*" in shown and "200,000 tokens" in shown
            spent = re.search(r'class="spent">([\d,]+) tokens<', shown)
            assert spent and int(spent.group(1).replace(",", "")) > 0
            dup = web.post(HERE, FORM)
            assert dup.status_code == 409 and "already exists" in dup.text
            edited = web.post(f"{HERE}/{row['id']}", {**FORM, "limit_amount": "300000"})
            assert edited.status_code == 303
            again = _row(web.get(HERE).text, row["id"])
            assert "300,000 tokens" in again and f'class="spent">{spent.group(1)} tokens' in again
            asked = web.post(f"{HERE}/{row['id']}/delete", {})
            assert asked.status_code == 200 and 'id="confirm-delete"' in asked.text
            assert store.get_budget(engine, gw.org.id, row["id"]) is not None
            gone = web.post(f"{HERE}/{row['id']}/delete", {"confirm": "delete"})
            assert gone.status_code == 303
            assert store.list_budgets(engine, gw.org.id) == []
            doc = check_budget({"name": "cfg", "window": "day", "limit_usd": 5})
            cfg = store.create_budget(engine, gw.org.id, doc, "config.toml", source="config")
            refused = web.post(f"{HERE}/{cfg['id']}", {**FORM, "name": "cfg"})
            assert refused.status_code == 409
            assert (
                "Budget &#39;cfg&#39; is defined in config.toml; change it there." in refused.text
            )
            assert config_owned("cfg") == "Budget 'cfg' is defined in config.toml; change it there."
            assert web.get(f"{HERE}/nope/edit").status_code == 404
        # the API says the same (its wording and the page's come from one place)
        admin = {"Authorization": f"Bearer {gw.org.admin_key}"}
        api = httpx.delete(f"{gw.base_url}/api/v1/budgets/{cfg['id']}", headers=admin)
        assert api.status_code == 409 and api.json()["error"]["message"] == config_owned("cfg")
        body = {"name": "x", "window": "1h", "limit_requests": 1, "scope": {"key_id": "nope"}}
        api = httpx.post(f"{gw.base_url}/api/v1/budgets", json=body, headers=admin)
        assert api.status_code == 400 and api.json()["error"]["message"] == unknown_key("nope")
    finally:
        engine.dispose()


def test_form_round_trips_through_the_checker() -> None:
    doc = bf.form_doc(
        {
            **FORM,
            "property_name": "team",
            "property_value": "red",
            "window": bf.HOURS,
            "window_hours": "6",
            "limit_kind": "usd",
            "limit_amount": "$12.345",
            "timezone": "Europe/Berlin",
        }
    )
    fields = check_budget(doc)
    assert fields["window"] == "6h" and fields["limit_amount"] == 12_345_000_000
    budget = Budget.from_row({**fields, "id": "b", "org_id": "o", "source": "api"})
    again = bf.form_of(budget)
    assert again["limit_amount"] == "12.345" and again["window_hours"] == "6"
    assert check_budget(bf.form_doc(again)) == fields
    assert bf.scope_words(budget.scope.as_dict(), {}) == (
        "user bob · property team = red · model gpt-4o*"
    )
    assert bf.scope_words({}, {}) == "whole organization"
    assert bf.scope_words({"key_id": "k1"}, {"k1": "laptop"}) == "key laptop"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"limit_amount": "lots"}, "limit_tokens: a number >= 0"),
        ({"limit_amount": "1.5"}, "limit_tokens: a whole number"),
        ({"thresholds": "50, high"}, "thresholds: whole percentages"),
        ({"window": bf.HOURS, "window_hours": "0"}, "window:"),
        ({"property_value": "red"}, "scope.property"),
        ({"limit_kind": "euros"}, "give exactly one of"),
        ({"action": "warn"}, "action: 'block' or 'alert'"),
        ({"name": " "}, "name:"),
    ],
)
def test_bad_form_input_names_the_field(change: dict[str, str], message: str) -> None:
    with pytest.raises(BudgetError, match=re.escape(message)):
        check_budget(bf.form_doc({**FORM, **change}))


def test_words_for_amounts_times_and_levels() -> None:
    assert bf.amount_words("requests", 1) == "1 request"
    assert bf.amount_words("tokens", 12345) == "12,345 tokens"
    assert bf.amount_words("usd", 0.5) == "$0.5"
    assert bf.amount_words("usd", None) == "—"
    assert bf.until(30) == "now"
    assert bf.until(5 * 60 + 5) == "in 5 min"
    assert bf.until(3 * 3600 + 20 * 60) == "in 3 h 20 min"
    assert bf.until(2 * 86400 + 3600) == "in 2 d 1 h"
    assert [_level(p) for p in (0, 80, 80.1, 99.9, 100, 250)] == [
        "ok", "ok", "warn", "warn", "over", "over",
    ]  # fmt: skip
