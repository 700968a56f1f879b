"""E2E: datasets against `heliograph serve` (configured by environment variables as the README
says) with traffic from the real `openai` package to the mock upstream: a dataset made from
the stored requests by filter (count first), a JSONL upload with a bad line, the items read
back through the API, pinned items readable after an edit; and in Chromium, Requests rows
ticked and added to a dataset, hostile text shown as text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from e2e_harness import Heliograph, admin_env, new_id, serving

from browser_support import Watch, chromium_browser, screenshot, sign_in
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

EMAIL, PASSWORD = "admin@example.com", "datasets e2e password"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("datasets-home")
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        **admin_env(EMAIL, PASSWORD),
    }
    with serving(home, env) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def chat(serve: Heliograph, text: str, model: str) -> str:
    rid = new_id()
    with openai.OpenAI(base_url=serve.url("v1"), api_key="sk-test", max_retries=0) as client:
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": text}],
            extra_headers={"Helicone-Request-Id": rid},
        )
    return rid


def test_dataset_from_traffic_and_an_upload(serve: Heliograph) -> None:
    support = [chat(serve, f"support question {i}", "gpt-4o-mini") for i in range(3)]
    other = chat(serve, "something else", "gpt-4o")
    for rid in [*support, other]:
        serve.record(rid)
    assert serve.admin_request("POST", "/api/v1/datasets", {"name": "support"}).status_code == 201
    path = "/api/v1/datasets/support/items/from-requests"
    query = {"params": {"model": "gpt-4o-mini"}}
    dry = serve.admin_request("POST", path, query | {"dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"matching": 3, "limit": 10_000, "would_add": 3}
    added = serve.admin_request("POST", path, query).json()
    assert added["added"] == 3 and added["error_count"] == 0

    jsonl = b"\n".join(
        [
            orjson.dumps({"inputs": {"question": "refund?"}, "expected": "Yes, within 30 days."}),
            b'{"inputs": {"question": "broken"',
            orjson.dumps({"messages": [{"role": "user", "content": "hi"}], "expected": "hello"}),
        ]
    )
    upload = serve.admin_request(
        "POST",
        "/api/v1/datasets/support/items/upload",
        content=jsonl,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert upload.status_code == 200, upload.text
    report = upload.json()
    assert report["added"] == 2 and report["error_count"] == 1
    assert report["errors"][0]["line"] == 2

    page = serve.admin_request("GET", "/api/v1/datasets/support/items").json()
    items = page["data"]
    assert len(items) == 5 and page["next_cursor"] is None
    from_traffic = {i["source_request_id"]: i for i in items if i["source_request_id"]}
    assert set(from_traffic) == set(support)
    first = from_traffic[support[0]]
    assert first["inputs"] == {"messages": [{"role": "user", "content": "support question 0"}]}
    assert first["expected"] == "Hello from the mock upstream."
    assert first["metadata"]["model"].startswith("gpt-4o-mini")
    assert [i["expected"] for i in items[3:]] == ["Yes, within 30 days.", "hello"]
    listed = serve.admin_request("GET", "/api/v1/datasets/support").json()
    assert listed["item_count"] == 5

    # an edit makes a new item; the pinned one still reads as it was
    edited = serve.admin_request(
        "PUT",
        f"/api/v1/datasets/support/items/{first['id']}",
        {"inputs": first["inputs"], "expected": "A better answer."},
    )
    assert edited.status_code == 201, edited.text
    pinned = serve.admin_request("GET", f"/api/v1/datasets/support/items/{first['id']}").json()
    assert pinned["expected"] == "Hello from the mock upstream."
    assert pinned["replaced_by"] == edited.json()["id"]
    export = serve.admin_request("GET", "/api/v1/datasets/support/items/export.jsonl")
    lines = [orjson.loads(line) for line in export.content.splitlines()]
    assert len(lines) == 5 and "A better answer." in {x["expected"] for x in lines}


def test_adding_requests_rows_in_chromium(serve: Heliograph, browser: Any) -> None:
    ids = [chat(serve, f"{HOSTILE} row {i}", "gpt-4o-mini") for i in range(2)]
    for rid in ids:
        serve.record(rid)
    assert serve.admin_request("POST", "/api/v1/datasets", {"name": "picked"}).status_code == 201
    page = browser.new_page()
    watch = Watch(page)
    try:
        page.goto(serve.base_url + "/login")
        sign_in(page, EMAIL, PASSWORD)
        page.wait_for_url(re.compile(r"/$|/settings/password"))
        page.goto(serve.base_url + "/requests")
        for rid in ids:
            page.check(f'input[name="pick.{rid}"]')
        page.select_option('select[name="dataset"]', "picked")
        page.click("text=Add selected to dataset")
        page.wait_for_url(re.compile(r"/datasets/picked\?"))
        assert "Added 2 items" in page.inner_text("#add-report")
        texts = page.locator("#items pre.item-text").all_inner_texts()
        assert sum(HOSTILE in t for t in texts) == 2
        screenshot(page, "e2e-dataset-picked")
    finally:
        page.close()
    assert watch.dialogs == [] and watch.csp == []
    items = serve.admin_request("GET", "/api/v1/datasets/picked/items").json()["data"]
    assert {i["source_request_id"] for i in items} == set(ids)
