"""E2E: an experiment's results against `heliograph serve` (configured by environment variables
as the README says), from the API to the dashboard.

A prompt with two versions and a dataset are made through the API; ``POST
/api/v1/experiments`` queues a run of both versions over the dataset with a deterministic
evaluator, and the job process that serve starts beside the writer calls the mock upstream
through the gateway. Variant A asks for at most 2 tokens (the mock then stops after
"Hello from"), B for the whole answer, so ``contains:upstream`` fails A and passes B on every
item. The results API is checked against the cells it pages (and the cells against the
request records the calls left); the experiment page, the diff and the review queue are opened
in Chromium with hostile text in the dataset and the experiment's name; and B is promoted to
``production`` through the dashboard's two steps, which the prompts API then shows.
(Running and resuming experiments from the CLI is ``test_e2e_experiment_runs.py``.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import Heliograph, admin_env, serving

from browser_support import Watch, chromium_browser, screenshot, sign_in
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "experiments@example.com"
ADMIN_PASSWORD = "e2e experiment horse battery"
HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')
ITEMS = 12
WAIT_S = 60.0
FULL = "Hello from the mock upstream."
NAME = f"short or whole {HOSTILE[0]}"


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("experiments-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        **admin_env(ADMIN_EMAIL, ADMIN_PASSWORD),
    }
    with serving(home, env) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def ok(resp: httpx.Response, status: int = 200) -> Any:
    assert resp.status_code == status, f"{resp.status_code} {resp.text[:500]}"
    return resp.json()


def prepare(serve: Heliograph) -> None:
    """Prompt ``support`` (v1 and v2, production on v1) and dataset ``faq``, by the API."""
    ok(serve.admin_request("POST", "/api/v1/prompts", {"name": "support"}), 201)
    for note in ("first", "second"):
        version = {
            "messages": [{"role": "user", "content": "Answer: {{q}}"}],
            "model": "gpt-4o-mini",
            "upstream": "openai",
            "message": note,
        }
        ok(serve.admin_request("POST", "/api/v1/prompts/support/versions", version), 201)
    ok(serve.admin_request("PUT", "/api/v1/prompts/support/labels/production", {"version": 1}))
    ok(serve.admin_request("POST", "/api/v1/datasets", {"name": "faq"}), 201)
    items = [
        {"inputs": {"q": f"{HOSTILE[i % 2]} question {i}"}, "expected": FULL} for i in range(ITEMS)
    ]
    added = ok(serve.admin_request("POST", "/api/v1/datasets/faq/items", {"items": items}), 201)
    assert added["added"] == ITEMS, added


def run_experiment(serve: Heliograph) -> str:
    body = {
        "name": NAME,
        "dataset": "faq",
        "variants": [
            {"kind": "prompt", "prompt": "support", "version": 1, "params": {"max_tokens": 2}},
            {"kind": "prompt", "prompt": "support", "version": 2},
        ],
        "evaluators": ["contains:upstream"],
        "concurrency": 4,
    }
    made = ok(serve.admin_request("POST", "/api/v1/experiments", body), 201)
    exp_id: str = made["id"]
    deadline = time.monotonic() + WAIT_S
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = ok(serve.admin_request("GET", f"/api/v1/experiments/{exp_id}"))
        if state["status"] not in ("queued", "running"):
            break
        time.sleep(0.3)
    assert state["status"] == "completed", (state, serve.output()[-3000:])
    return exp_id


def all_rows(serve: Heliograph, exp_id: str) -> list[dict[str, Any]]:
    """The whole matrix through the cells API, 5 items a page."""
    rows: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        query = "limit=5" + ("" if after is None else f"&after={after}")
        got = ok(serve.admin_request("GET", f"/api/v1/experiments/{exp_id}/cells?{query}"))
        rows += got["data"]
        after = got["next_after"]
        if after is None:
            return rows


def check_results(serve: Heliograph, exp_id: str) -> None:
    results = ok(serve.admin_request("GET", f"/api/v1/experiments/{exp_id}/results"))
    assert results["evaluators"] == ["contains"]
    a, b = results["variants"]
    assert (a["position"], b["position"]) == (0, 1)
    rows = all_rows(serve, exp_id)
    assert [r["item_position"] for r in rows] == list(range(ITEMS))
    outputs: dict[str, list[str]] = {a["id"]: [], b["id"]: []}
    values: dict[str, list[float]] = {a["id"]: [], b["id"]: []}
    for row in rows:
        assert [c["variant_id"] for c in row["cells"]] == [a["id"], b["id"]]
        for cell in row["cells"]:
            assert cell["status"] == "done", cell
            outputs[cell["variant_id"]].append(cell["output"])
            values[cell["variant_id"]].append(cell["scores"]["contains"]["value"])
            record = serve.record(cell["request_id"])  # every call left its record
            assert record["status"] == 200
    assert set(outputs[a["id"]]) == {"Hello from"}
    assert set(outputs[b["id"]]) == {FULL}
    for v in (a, b):  # the summary is what the cells say
        s = v["summary"]
        assert s["done"] == ITEMS and s["errors"] == 0
        got = values[v["id"]]
        assert s["evaluators"]["contains"]["mean"] == pytest.approx(sum(got) / len(got))
        assert s["evaluators"]["contains"]["scored"] == ITEMS
    assert a["summary"]["evaluators"]["contains"]["mean"] == 0.0
    assert b["summary"]["evaluators"]["contains"]["mean"] == 1.0
    (comparison,) = results["comparisons"]
    assert comparison["label"] == "B - A" and comparison["n"] == ITEMS
    assert (comparison["diff"], comparison["ci_low"], comparison["ci_high"]) == (1.0, 1.0, 1.0)
    assert comparison["significant"] is True
    export = serve.admin_request("GET", f"/api/v1/experiments/{exp_id}/export.jsonl")
    assert export.status_code == 200 and len(export.text.splitlines()) == 2 * ITEMS


def login(browser: Any, serve: Heliograph) -> Any:
    context = browser.new_context(base_url=serve.base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.watch = Watch(page)
    page.goto("/login")
    sign_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def nothing_ran(page: Any) -> None:
    assert page.watch.dialogs == [] and page.watch.csp == []
    assert page.locator("img[src=x]").count() == 0
    assert page.locator("script", has_text="alert").count() == 0


def labels_of(serve: Heliograph) -> dict[str, int]:
    doc = ok(serve.admin_request("GET", "/api/v1/prompts/support/labels"))
    return {row["label"]: row["version"] for row in doc["data"]}


def test_experiment_from_api_to_promotion(serve: Heliograph, browser: Any) -> None:
    prepare(serve)
    exp_id = run_experiment(serve)
    check_results(serve, exp_id)

    page = login(browser, serve)
    try:
        page.goto("/experiments")
        page.get_by_role("link", name=NAME).click()
        page.wait_for_url(re.compile(f"/experiments/{exp_id}$"))
        assert page.locator("h1").inner_text() == NAME
        assert page.locator("#matrix tbody tr").count() == ITEMS
        first = page.locator('#matrix tr[data-item="0"]')
        assert first.locator('td[data-variant="0"] pre.output').inner_text() == "Hello from"
        assert first.locator('td[data-variant="1"] pre.output').inner_text() == FULL
        difference = page.locator('#differences li[data-evaluator="contains"]').inner_text()
        assert "B \u2212 A: +1.00 [1.00, 1.00]" in difference and "B is better" in difference
        nothing_ran(page)
        screenshot(page, "e2e-experiment")

        first.locator("th a", has_text="diff").click()
        page.wait_for_url(re.compile(r"/diff\?item=0"))
        assert page.locator("#output-diff ins").all_inner_texts() == [" the mock upstream."]
        nothing_ran(page)

        page.goto(f"/review?experiment={exp_id}")
        assert HOSTILE[0] + " question 0" in page.locator("#review-input").inner_text()
        page.keyboard.press("p")
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r"i=1"))
        nothing_ran(page)
        results = ok(serve.admin_request("GET", f"/api/v1/experiments/{exp_id}/results"))
        assert results["evaluators"] == ["contains", "human"]
        human = results["variants"][0]["summary"]["evaluators"]["human"]
        assert (human["scored"], human["passed"]) == (1, 1)

        page.goto(f"/experiments/{exp_id}")
        page.locator("#promote summary").click()
        page.select_option("#promote select[name=variant]", "1")
        page.locator("#promote button[type=submit]").click()
        page.wait_for_url(re.compile(r"/promote$"))
        assert "will point at version 2" in page.locator("#confirm").inner_text()
        assert labels_of(serve)["production"] == 1  # nothing moves before the confirmation
        page.locator("#confirm-promote").click()
        page.wait_for_url(re.compile(r"promoted="))
        assert page.locator("#promoted").inner_text() == "Promoted: support@production=v2."
        nothing_ran(page)
    finally:
        page.context.close()
    assert labels_of(serve)["production"] == 2
