"""The Datasets pages over real HTTP: create, add ticked Requests rows and every matching
request (count first), upload with the CSRF header and its report, archive, viewers
read-only, hostile item text escaped; and in Chromium, hostile text shown literally and rows
added from the Requests page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from browser_support import Watch, chromium_browser, screenshot
from conftest import LiveGateway
from web_support import WebClient, add_user, csrf_of, send

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def test_dataset_pages_and_actions(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    add_user(gw, "viewer@example.com", role="viewer")
    ids = [send(gw, f"question {i}") for i in range(3)]
    send(gw, "other", model="gpt-4o")
    gw.wait_records(4)
    with WebClient(gw, "admin@example.com") as web, WebClient(gw, "viewer@example.com") as viewer:
        assert viewer.post("/datasets", {"name": "golden"}).status_code == 403
        made = web.post("/datasets", {"name": "golden", "description": HOSTILE})
        assert made.status_code == 303 and made.headers["location"] == "/datasets/golden"
        assert web.post("/datasets", {"name": "golden"}).status_code == 409
        assert web.post("/datasets", {"name": "Bad!"}).status_code == 400
        listing = web.get("/datasets").text
        assert 'data-dataset="golden"' in listing and HOSTILE not in listing
        assert '<a href="/datasets" aria-current="page">Datasets</a>' in listing

        page = web.get("/requests").text
        assert 'name="pick.' in page and 'id="add-to-dataset"' in page
        assert 'name="pick.' not in viewer.get("/requests").text
        picked = {f"pick.{ids[0]}": "1", f"pick.{ids[1]}": "1", "dataset": "golden"}
        assert viewer.post("/datasets/add-requests", picked | {"expected": "1"}).status_code == 403
        done = web.post("/datasets/add-requests", picked | {"expected": "1"})
        assert done.status_code == 303 and "added=2" in done.headers["location"]

        matching = web.get("/datasets/add-matching", model="gpt-4o-mini").text
        count = re.search(r'id="matching-count"><strong>(\d+)</strong>', matching)
        assert count and count.group(1) == "3"
        query = re.search(r'name="query" value="([^"]+)"', matching)
        assert query and "model=gpt-4o-mini" in query.group(1)
        added = web.post(
            "/datasets/add-requests",
            {"dataset": "golden", "query": "model=gpt-4o-mini", "expected": "1"},
        )
        assert added.status_code == 303 and "added=1" in added.headers["location"]
        assert "skipped=2" in added.headers["location"]  # the two ticked before
        searched = web.get("/datasets/add-matching", q="question").text
        assert "Free-text search" in searched and 'id="add-matching"' not in searched

        upload = "/datasets/golden/upload"
        body = orjson.dumps({"inputs": {"q": HOSTILE}, "expected": HOSTILE}) + b"\n{oops\n"
        headers = {"Content-Type": "application/x-ndjson"}
        assert web.http.post(upload, content=body, headers=headers).status_code == 403  # no token
        token = csrf_of(web.get("/datasets/golden").text)
        as_viewer = viewer.http.post(
            upload,
            content=body,
            headers=headers | {"X-CSRF-Token": csrf_of(viewer.get("/datasets").text)},
        )
        assert as_viewer.status_code == 403
        report = web.http.post(upload, content=body, headers=headers | {"X-CSRF-Token": token})
        assert report.status_code == 200, report.text
        assert report.json()["added"] == 1 and report.json()["errors"][0]["line"] == 2

        shown = web.get("/datasets/golden").text
        assert HOSTILE not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
        items = re.findall(r'data-item="([^"]+)"', shown)
        assert len(items) == 4
        assert viewer.post(f"/datasets/golden/items/{items[0]}/archive", {}).status_code == 403
        archived = web.post(f"/datasets/golden/items/{items[0]}/archive", {})
        assert archived.status_code == 303
        assert items[0] not in web.get("/datasets/golden").text
        assert items[0] in web.get("/datasets/golden", archived="1").text
        assert web.get("/datasets/nope").status_code == 404

        # the dashboard's export, for any signed-in user: the live items, as the API gives them
        exported = viewer.get("/datasets/golden/export.jsonl")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("application/x-ndjson")
        lines = [orjson.loads(line) for line in exported.text.splitlines()]
        assert sorted(line["id"] for line in lines) == sorted(items[1:])
        assert HOSTILE in exported.text  # data, not a page: exported as it is
        assert 'href="/datasets/golden/export.jsonl"' in shown
        assert viewer.get("/datasets/nope/export.jsonl").status_code == 404


def test_hostile_items_and_adding_rows_in_chromium(
    gateway: LiveGateway, browser: Any, tmp_path: Path
) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    ids = [send(gw, f"row {i} {HOSTILE}") for i in range(2)]
    gw.wait_records(2)
    admin = gw.org.admin_key
    httpx.post(
        gw.base_url + "/api/v1/datasets",
        json={"name": "golden"},
        headers={"Authorization": f"Bearer {admin}"},
    ).raise_for_status()
    page = browser.new_page()
    watch = Watch(page)
    page.goto(gw.base_url + "/login")
    page.fill('input[name="email"]', "admin@example.com")
    page.fill('input[name="password"]', "correct horse battery")
    page.click('button[type="submit"]')
    page.wait_for_url(gw.base_url + "/")
    page.goto(gw.base_url + "/requests")
    page.check(f'input[name="pick.{ids[0]}"]')
    page.check(f'input[name="pick.{ids[1]}"]')
    page.select_option('select[name="dataset"]', "golden")
    page.click("text=Add selected to dataset")
    page.wait_for_url(re.compile(r"/datasets/golden\?"))
    assert "Added 2 items" in page.inner_text("#add-report")
    cells = page.locator("#items pre.item-text").all_inner_texts()
    assert sum(HOSTILE in c for c in cells) == 2  # shown as text, never run
    # an upload through the page's script: the report names the bad line
    upload = tmp_path / "items.jsonl"
    upload.write_text(orjson.dumps({"inputs": {"q": HOSTILE}}).decode() + "\nnot json\n")
    page.click("#upload summary")  # closed once the dataset has items
    page.set_input_files('#upload-form input[type="file"]', str(upload))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#upload-report .upload-errors")
    report = page.inner_text("#upload-report")
    assert "Added 1 items" in report and "Line 2: not JSON" in report
    page.goto(gw.base_url + "/datasets/golden")
    assert page.locator("#items tbody tr").count() == 3
    screenshot(page, "dataset")
    assert watch.dialogs == [] and watch.csp == []
    page.close()
