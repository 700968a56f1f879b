"""Budgets, record webhooks and alerts in Chromium against `heliograph serve`, configured by
config.toml and environment variables as the README says.

A request budget and an alert channel come from config.toml. Traffic from the real `openai`
package uses up the budget (the third request is refused in OpenAI's error shape) and the
budgets page shows it spent, as config-owned. Then, logged in as the admin, each page's form
makes something that must work end to end: a budget (seen by the API and enforced by the
gateway workers), a webhook endpoint (a later record is delivered to a real receiver, signed,
and counted on the page), and an alert rule on the config channel (it fires; the notification
reaches the receiver and the history on /alerts shows it).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from e2e_harness import Heliograph, admin_env, new_id, serving, stopping, wait_for

from browser_support import Watch, chromium_browser, screenshot, sign_in
from mock_upstream import MockUpstream
from webhook_receiver import Receiver

pytestmark = pytest.mark.slow

EMAIL, PASSWORD = "admin@example.com", "operator pages password"
REFRESH = 0.3
CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with stopping(Receiver().start()) as hooks:
        yield hooks


@pytest.fixture(scope="module")
def serve(
    tmp_path_factory: pytest.TempPathFactory, mock: MockUpstream, receiver: Receiver
) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("operator-pages-home")
    (home / "config.toml").write_text(
        f"""
[[budgets]]
name = "carol-requests"
window = "day"
limit_requests = 2
scope = {{ user_id = "carol" }}

[[alerts.channels]]
name = "ops-hook"
kind = "webhook"
url = "{receiver.url("alerts")}"
secret = "${{OPS_HOOK_SECRET}}"
"""
    )
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": mock.url,
        "HELIOGRAPH_KEY_REFRESH_INTERVAL": str(REFRESH),
        **admin_env(EMAIL, PASSWORD),
        "HELIOGRAPH_ALERTS_INTERVAL_S": "1",
        "OPS_HOOK_SECRET": "ops-signing-secret",
    }
    with serving(home, env, workers=2) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def chat(serve: Heliograph, user: str, **headers: str) -> str:
    rid = new_id()
    with openai.OpenAI(base_url=serve.url("v1"), api_key="sk-test", max_retries=0) as client:
        client.chat.completions.create(
            **CHAT, user=user, extra_headers={"Helicone-Request-Id": rid, **headers}
        )
    return rid


def api(serve: Heliograph, path: str) -> Any:
    resp = serve.admin_request("GET", path)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_operator_pages_in_the_browser(serve: Heliograph, browser: Any, receiver: Receiver) -> None:
    # the config budget holds across both workers: two through, the third refused
    for _ in range(2):
        serve.record(chat(serve, "carol"))
    with pytest.raises(openai.RateLimitError) as refused:
        chat(serve, "carol")
    assert "carol-requests" in str(refused.value)

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    watch = Watch(page)
    try:
        page.goto(serve.base_url + "/login")
        sign_in(page, EMAIL, PASSWORD)
        page.wait_for_url(serve.base_url + "/")

        # budgets: the config budget, used up, and one made through the form
        page.goto(serve.base_url + "/settings/budgets")
        [config_budget] = [b for b in api(serve, "/api/v1/budgets")["data"]]
        row = page.locator(f'tr[data-budget="{config_budget["id"]}"]')
        assert row.locator(".budget-name").inner_text() == "carol-requests"
        assert row.locator(".spent").inner_text() == "2 requests"
        assert row.locator(".remaining").inner_text() == "0 requests"
        assert "config.toml" in row.inner_text() and row.locator("a.button").count() == 0
        page.click("#new-budget summary")
        page.fill("#new-budget input[name=name]", "dave-requests")
        page.fill("#new-budget input[name=user_id]", "dave")
        page.select_option("#new-budget select[name=window]", "day")
        page.select_option("#new-budget select[name=limit_kind]", "requests")
        page.fill("#new-budget input[name=limit_amount]", "1")
        page.click("#new-budget button.primary")
        page.wait_for_selector("td.budget-name >> text=dave-requests")
        made = {b["name"]: b for b in api(serve, "/api/v1/budgets")["data"]}
        assert made["dave-requests"]["scope"] == {"user_id": "dave"}
        assert made["dave-requests"]["limit_requests"] == 1
        screenshot(page, "operator-budgets")
        time.sleep(REFRESH * 4)  # every worker has the new budget
        serve.record(chat(serve, "dave"))
        with pytest.raises(openai.RateLimitError) as second:
            chat(serve, "dave")
        assert "dave-requests" in str(second.value)

        # webhooks: an endpoint made through the form gets the next matching record
        page.goto(serve.base_url + "/settings/webhooks")
        page.fill("#new-webhook input[name=name]", "warehouse")
        page.fill("#new-webhook input[name=url]", receiver.url("records"))
        page.fill("#new-webhook input[name=filter]", "user_id=erin")
        page.click("#new-webhook button[type=submit]")
        secret = page.locator("#new-secret").inner_text()
        assert "warehouse" in page.locator("#webhooks").inner_text()
        wanted = chat(serve, "erin")
        chat(serve, "frank")  # outside the filter: never delivered
        hits = wait_for("the record's delivery", lambda: receiver.taken("records"), 30)
        assert set(hits) == {wanted}
        [hit] = hits[wanted]
        assert hit.json()["record"]["id"] == wanted and hit.json()["user_id"] == "erin"
        assert hit.headers["Heliograph-Signature"] and secret
        endpoint = page.locator("#webhooks tr[data-endpoint]").first

        def delivered() -> bool:
            page.reload()
            return bool(endpoint.locator("td").nth(6).inner_text() == "1")

        wait_for("the delivery counted on the page", delivered, timeout=20)
        screenshot(page, "operator-webhooks")

        # alerts: a rule made through the form fires on the config channel
        page.goto(serve.base_url + "/alerts")
        assert "ops-hook" in page.locator("#channels").inner_text()
        page.click("#new-rule summary")
        page.fill("#new-rule input[name=name]", "any traffic")
        page.select_option("#new-rule select[name=metric]", "requests")
        page.fill("#new-rule input[name=window]", "1h")
        page.select_option("#new-rule select[name=comparison]", ">")
        page.fill("#new-rule input[name=threshold]", "2")
        page.fill("#new-rule input[name=channels]", "ops-hook")
        page.click("#new-rule button[type=submit]")
        page.wait_for_selector("#rules td >> text=any traffic")

        def notified() -> list[Any]:
            return [h for h in receiver.all_hits() if h.path == "alerts" and h.answered == 200]

        note = wait_for("the firing notification", notified, 30)[0]
        assert "any traffic" in note.body.decode() and note.headers["Heliograph-Signature"]

        def in_history() -> bool:
            page.reload()
            rows = page.locator("#events tr[data-event]")
            return rows.count() > 0 and "any traffic" in rows.first.inner_text()

        wait_for("the event in the history", in_history, timeout=20)
        first = page.locator("#events tr[data-event]").first
        assert "firing" in first.inner_text() and "ops-hook: sent" in first.inner_text()
        screenshot(page, "operator-alerts")
        assert watch.dialogs == [] and watch.csp == []
    finally:
        context.close()
