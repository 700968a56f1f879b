"""The prompt pages in Chromium against `heliograph serve`, configured by environment variables
as the README says: a prompt and two versions made through the API, production traffic sent
with the real `openai` package naming the prompt (to the mock upstream), then, logged in as
the admin: the list, the figures per version checked against the stored records, the diff,
and `production` moved from v1 to v2 through the confirmation (seen in the API's label
history as a dashboard user). A second prompt holds hostile text everywhere a prompt holds
text; it shows as text and no script runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, admin_env, new_id, serving

from browser_support import Watch, chromium_browser, screenshot, sign_in
from heliograph.web.format import pct, usd
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

REFRESH = 0.3
EMAIL, PASSWORD = "admin@example.com", "prompt pages password"
HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(1)> {{ x }}'
V1 = {
    "messages": [
        {"role": "system", "content": "Answer in {{language}}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "model": "gpt-4o-mini",
    "params": {"temperature": 0.2},
    "variables": {"language": "English", "text": None},
    "message": "first cut",
}
V2 = {
    **V1,
    "messages": [
        {"role": "system", "content": "Answer briefly in {{language}}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "params": {"temperature": 0.7},
    "message": "shorter",
}
SENT = {1: 3, 2: 2}  # requests per version


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("prompt-pages-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_KEY_REFRESH_INTERVAL": str(REFRESH),
        **admin_env(EMAIL, PASSWORD),
    }
    with serving(home, env) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def api(serve: Heliograph, method: str, path: str, body: Any = None) -> httpx.Response:
    resp = serve.admin_request(method, path, body)
    assert resp.status_code < 300, resp.text
    return resp


def send_traffic(serve: Heliograph) -> dict[int, list[dict[str, Any]]]:
    """Production traffic naming the prompt (v1 through the label, v2 by number), then the
    stored records of each version."""
    ids: dict[int, list[str]] = {1: [], 2: []}
    with openai.OpenAI(base_url=serve.url("v1"), api_key="sk-test", max_retries=0) as client:
        for version, count in SENT.items():
            for i in range(count):
                rid = new_id()
                extra: dict[str, Any] = {"prompt_id": "summary", "inputs": {"text": f"t{i}"}}
                if version == 2:
                    extra["prompt_version"] = 2
                client.chat.completions.create(
                    model="",
                    messages=[],
                    extra_body=extra,
                    extra_headers={"Helicone-Request-Id": rid},
                )
                ids[version].append(rid)
    records = {v: [serve.record(rid) for rid in rids] for v, rids in ids.items()}
    for version, recs in records.items():
        assert {r["prompt_name"] for r in recs} == {"summary"}
        assert {r["prompt_version"] for r in recs} == {version}
    # one thumbs up on a v2 record, through the feedback API with the write key
    resp = httpx.post(
        f"{serve.base_url}/v1/request/{ids[2][0]}/feedback",
        json={"rating": True},
        headers={"Authorization": f"Bearer {serve.write_key}"},
        timeout=15,
    )
    assert resp.status_code == 200, resp.text
    return records


def test_prompt_pages_in_the_browser(serve: Heliograph, browser: Any) -> None:
    api(serve, "POST", "/api/v1/prompts", {"name": "summary", "description": "Summaries"})
    api(serve, "POST", "/api/v1/prompts/summary/versions", V1)
    api(serve, "POST", "/api/v1/prompts/summary/versions", V2)
    api(serve, "PUT", "/api/v1/prompts/summary/labels/production", {"version": 1})
    api(serve, "POST", "/api/v1/prompts", {"name": "evil", "description": HOSTILE})
    hostile = {
        "messages": [{"role": "system", "content": "<script>alert(2)</script> {{v}}"}],
        "variables": {"v": '"><img src=x onerror=alert(3)>'},
        "message": HOSTILE,
    }
    api(serve, "POST", "/api/v1/prompts/evil/versions", hostile)
    api(serve, "POST", "/api/v1/prompts/evil/versions", {**hostile, "message": "two {{"})
    time.sleep(REFRESH * 4)  # every worker's prompt cache has the labels
    records = send_traffic(serve)

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    watch = Watch(page)
    try:
        page.goto(serve.base_url + "/login")
        sign_in(page, EMAIL, PASSWORD)
        page.wait_for_url(serve.base_url + "/")

        # the list, reached from the top navigation
        page.click("header nav >> text=Prompts")
        page.wait_for_url("**/prompts*")
        row = page.locator('tr[data-prompt="summary"]')
        assert "production → v1" in row.inner_text()
        assert row.locator("td").nth(4).inner_text() == str(sum(SENT.values()))
        screenshot(page, "prompts-list")

        # the prompt's page: figures per version, checked against the stored records
        page.click('a[href="/prompts/summary"]')
        page.goto(serve.base_url + "/prompts/summary?range=1h")
        for version, recs in records.items():

            def cell(metric: str, v: int = version) -> str:
                sel = f'#metrics-table tr[data-metric="{metric}"] td[data-version="{v}"] a'
                return str(page.locator(sel).inner_text())

            assert cell("Requests") == str(len(recs))
            priced = [r["cost_usd"] for r in recs if r["cost_usd"] is not None]
            assert priced, recs[0]
            assert cell("Cost per request") == usd(sum(priced) / len(priced))
            assert cell("Tokens in per request") == (
                f"{sum(r['prompt_tokens'] or 0 for r in recs) / len(recs):.1f}"
            )
            assert cell("Tokens out per request") == (
                f"{sum(r['completion_tokens'] or 0 for r in recs) / len(recs):.1f}"
            )
            errors = sum(r["state"] in ("error", "interrupted") for r in recs)
            assert cell("Error rate") == pct(errors / len(recs))
            assert cell("Latency p50") != "—"
        feedback = '#metrics-table tr[data-metric="Feedback (thumbs up)"] td[data-version="2"]'
        assert page.locator(feedback).inner_text().startswith("100% of 1")
        assert (
            page.locator("#playground-link")
            .get_attribute("href")
            .startswith("/prompts/summary/playground")
        )
        screenshot(page, "prompt-page")

        # the diff of v1 and v2, picked in the form
        page.select_option("#diff-form select[name=a]", "1")
        page.select_option("#diff-form select[name=b]", "2")
        page.click("#diff-form button[type=submit]")
        page.wait_for_url("**a=1**")
        assert page.locator("#diff-messages ins").first.inner_text().strip() == "briefly"
        temperature = page.locator('#diff-fields tr[data-field="params.temperature"]')
        assert "0.2" in temperature.inner_text() and "0.7" in temperature.inner_text()
        screenshot(page, "prompt-diff")

        # move production from v1 to v2: the first form only asks
        page.select_option("#move-label select[name=label]", "production")
        page.select_option("#move-label select[name=version]", "2")
        page.click("#move-label button[type=submit]")
        page.wait_for_selector("#confirm-move")
        assert "version 1" in page.inner_text("#confirm") and "version 2" in page.inner_text(
            "#confirm"
        )
        labels = api(serve, "GET", "/api/v1/prompts/summary/labels").json()
        assert {r["label"]: r["version"] for r in labels["data"]}["production"] == 1
        screenshot(page, "prompt-move-confirm")
        page.click("#confirm-move")
        page.wait_for_url("**moved=production**")
        assert "Moved label production to version 2" in page.inner_text("main")
        screenshot(page, "prompt-moved")
        labels = api(serve, "GET", "/api/v1/prompts/summary/labels").json()
        assert {r["label"]: r["version"] for r in labels["data"]}["production"] == 2
        latest = labels["history"][0]
        assert (latest["label"], latest["from_version"], latest["to_version"]) == (
            "production",
            1,
            2,
        )
        assert latest["by"].startswith("user:")
        assert EMAIL in page.inner_text("#history-table")

        # hostile text: shown literally, nothing runs
        page.goto(serve.base_url + "/prompts/evil?a=1&b=2")
        assert HOSTILE in page.inner_text("#description-text")
        page.click("#v1 summary")
        text = page.inner_text("main")
        assert "<script>alert(2)</script> {{v}}" in text
        assert '"><img src=x onerror=alert(3)>' in text
        assert "two {{" in text and HOSTILE in text
        assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
        screenshot(page, "prompt-hostile")
        page.goto(serve.base_url + "/prompts")
        assert HOSTILE in page.inner_text('tr[data-prompt="evil"]')
        assert watch.dialogs == [] and watch.csp == []
    finally:
        context.close()
