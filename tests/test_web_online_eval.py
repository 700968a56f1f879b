"""The online evaluation pages over real HTTP: /settings/evaluations (admins create, change
and delete rules; bad fields named; viewers read only) and /scores (mean per bucket per model
and per prompt version); and in Chromium, a hostile score name shown as text on the chart."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from browser_support import Watch, chromium_browser
from conftest import LiveGateway
from heliograph.store.engine import make_engine
from heliograph.store.feedback import set_scores
from web_support import WebClient, add_user, send

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(2)>'
SPEC = {"name": "polite", "kind": "contains", "config": {"values": ["please"]}}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def scored(gw: LiveGateway, name: str, values: dict[str, float]) -> list[str]:
    """Records (two models) with the score ``name`` set as given per model."""
    ids = [send(gw, "hi", model=model) for model in values]
    gw.wait_records(len(ids))
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        for rid, value in zip(ids, values.values(), strict=True):
            assert set_scores(engine, gw.org.id, rid, {name: value})
    finally:
        engine.dispose()
    return ids


def test_rules_page_admin_and_viewer(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    add_user(gw, "viewer@example.com", role="viewer")
    form = {
        "evaluator": orjson.dumps(SPEC).decode(),
        "filter": "model=gpt-4o&property.team=red",
        "sample_rate": "0.5",
        "enabled": "1",
    }
    with WebClient(gw, "admin@example.com") as web, WebClient(gw, "viewer@example.com") as viewer:
        assert viewer.post("/settings/evaluations", form).status_code == 403
        made = web.post("/settings/evaluations", form)
        assert made.status_code == 303, made.text
        page = web.get("/settings/evaluations").text
        assert "polite" in page and "model=gpt-4o&amp;property.team=red" in page
        assert "50 %" in page
        bad = web.post("/settings/evaluations", form | {"filter": "modle=x", "name": "other"})
        assert bad.status_code == 400 and "filter.modle" in bad.text
        assert "modle=x" in bad.text  # the form keeps what was typed
        bad = web.post("/settings/evaluations", form | {"evaluator": "{", "name": "x2"})
        assert bad.status_code == 400 and "evaluator" in bad.text
        bad = web.post("/settings/evaluations", form | {"sample_rate": "0", "name": "x3"})
        assert bad.status_code == 400 and "sample_rate" in bad.text
        assert web.post("/settings/evaluations", form).status_code == 409
        rules = httpx.get(
            gw.base_url + "/api/v1/online-evals",
            headers={"Authorization": f"Bearer {gw.org.read_key}"},
        ).json()["data"]
        rule_id = rules[0]["id"]
        here = f"/settings/evaluations/{rule_id}"
        assert viewer.post(here, {"sample_rate": "1"}).status_code == 403
        changed = web.post(here, {"sample_rate": "1", "filter": "model=llama3", "edit": "1"})
        assert changed.status_code == 303
        rule = httpx.get(
            gw.base_url + f"/api/v1/online-evals/{rule_id}",
            headers={"Authorization": f"Bearer {gw.org.read_key}"},
        ).json()
        assert rule["sample_rate"] == 1.0 and rule["filter"] == {"model": "llama3"}
        assert rule["enabled"] is False  # the box was not ticked in that form
        viewer_page = viewer.get("/settings/evaluations").text
        assert "polite" in viewer_page and "Create rule" not in viewer_page
        assert viewer.post(here + "/delete", {}).status_code == 403
        assert web.post(here + "/delete", {}).status_code == 303
        assert "polite" not in web.get("/settings/evaluations").text


def test_scores_page_per_model_and_prompt(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    scored(gw, "helpful", {"gpt-4o-mini": 1.0, "gpt-4o": 0.25})
    with WebClient(gw, "admin@example.com") as web:
        page = web.get("/scores", range="24h").text
        assert '<option value="helpful" selected>' in page
        assert "gpt-4o-mini" in page and "0.250" in page and "1.000" in page
        assert 'id="chart-score-0"' in page and 'id="chart-score-1"' in page
        assert 'aria-current="page">Scores</a>' in page
        prompts = web.get("/scores", range="24h", name="helpful", by="prompt").text
        assert 'id="scores-none"' in prompts  # these records name no prompt
        empty = web.get("/scores", range="1h", name="nope").text
        assert "helpful" in empty  # an unknown name falls back to a stored one


def test_hostile_score_name_in_chromium(gateway: LiveGateway, browser: Any) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    scored(gw, HOSTILE, {HOSTILE[:40]: 0.5})
    page = browser.new_page()
    watch = Watch(page)
    page.goto(gw.base_url + "/login")
    page.fill('input[name="email"]', "admin@example.com")
    page.fill('input[name="password"]', "correct horse battery")
    page.click('button[type="submit"]')
    page.wait_for_url(gw.base_url + "/")
    page.goto(gw.base_url + "/scores?range=24h")
    assert HOSTILE in page.inner_text("figcaption.chart-title")
    assert page.locator('select[name="name"] option').first.inner_text() == HOSTILE
    assert HOSTILE[:40] in page.inner_text("#score-lines")
    assert page.locator("img[src=x]").count() == 0
    assert watch.dialogs == [] and watch.csp == []
    page.close()
