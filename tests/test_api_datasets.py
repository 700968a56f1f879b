"""The datasets API over real HTTP: scopes, org isolation, items (duplicates, edits that
archive, pinned ids still readable), from-requests by ids and by filter (dry run first), the
streamed upload (bad lines by number, 413 past the limit, 415), and the export."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from conftest import LiveGateway
from heliograph.api import dataset_imports
from web_support import send


def call(
    gw: LiveGateway, method: str, path: str, key: str, body: Any = None, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.request(method, gw.base_url + path, json=body, headers=headers, timeout=15, **kw)


def make(gw: LiveGateway, name: str = "golden") -> None:
    resp = call(gw, "POST", "/api/v1/datasets", gw.org.admin_key, {"name": name})
    assert resp.status_code == 201, resp.text


def items(gw: LiveGateway, name: str = "golden", **params: str) -> list[dict[str, Any]]:
    resp = call(gw, "GET", f"/api/v1/datasets/{name}/items", gw.org.read_key, params=params)
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def test_lifecycle_scopes_and_isolation(gateway_any: LiveGateway) -> None:
    gw, admin, read, write = (
        gateway_any,
        gateway_any.org.admin_key,
        gateway_any.org.read_key,
        gateway_any.org.write_key,
    )
    for key in (read, write):  # neither may create
        resp = call(gw, "POST", "/api/v1/datasets", key, {"name": "golden"})
        assert resp.status_code == 403
    make(gw)
    assert call(gw, "POST", "/api/v1/datasets", admin, {"name": "golden"}).status_code == 409
    assert call(gw, "POST", "/api/v1/datasets", admin, {"name": "Bad Name"}).status_code == 400
    assert call(gw, "POST", "/api/v1/datasets", admin, {"name": "add-matching"}).status_code == 400
    assert call(gw, "GET", "/api/v1/datasets", write).status_code == 403
    listed = call(gw, "GET", "/api/v1/datasets", read).json()["data"]
    assert [(d["name"], d["item_count"]) for d in listed] == [("golden", 0)]
    assert listed[0]["created_by"].startswith("key:")
    patched = call(gw, "PATCH", "/api/v1/datasets/golden", admin, {"description": "Q&A"})
    assert patched.status_code == 200 and patched.json()["description"] == "Q&A"
    body = {
        "items": [
            {"inputs": {"q": "2+2"}, "expected": "4"},
            {"inputs": {"q": "2+2"}, "expected": "4"},
        ]
    }
    assert call(gw, "POST", "/api/v1/datasets/golden/items", read, body).status_code == 403
    added = call(gw, "POST", "/api/v1/datasets/golden/items", admin, body)
    assert added.status_code == 201 and added.json()["added"] == 1
    assert added.json()["skipped"] == 1
    bad = call(gw, "POST", "/api/v1/datasets/golden/items", admin, {"items": [{"inputs": 1}]})
    assert bad.status_code == 400 and bad.json()["error"]["message"].startswith("items[0]: ")

    # another organization sees nothing and can touch nothing
    other = gw.other
    item_id = added.json()["ids"][0]
    for method, path, key in [
        ("GET", "/api/v1/datasets/golden", other.read_key),
        ("GET", "/api/v1/datasets/golden/items", other.read_key),
        ("GET", f"/api/v1/datasets/golden/items/{item_id}", other.read_key),
        ("PATCH", "/api/v1/datasets/golden", other.admin_key),
        ("DELETE", f"/api/v1/datasets/golden/items/{item_id}", other.admin_key),
        ("DELETE", "/api/v1/datasets/golden", other.admin_key),
        ("GET", "/api/v1/datasets/golden/items/export.jsonl", other.read_key),
    ]:
        body = {"description": "x"} if method == "PATCH" else None
        assert call(gw, method, path, key, body).status_code == 404, (method, path)
    assert call(gw, "GET", "/api/v1/datasets", other.read_key).json()["data"] == []
    assert call(gw, "DELETE", "/api/v1/datasets/golden", admin).status_code == 204
    assert call(gw, "GET", "/api/v1/datasets/golden", read).status_code == 404


def test_edits_archive_and_pinned_items_stay_readable(gateway: LiveGateway) -> None:
    gw, admin, read = gateway, gateway.org.admin_key, gateway.org.read_key
    make(gw)
    resp = call(gw, "POST", "/api/v1/datasets/golden/items", admin, {"inputs": {"q": "a"}})
    pinned = resp.json()["ids"][0]
    path = f"/api/v1/datasets/golden/items/{pinned}"
    change = {"inputs": {"q": "a"}, "expected": "A"}
    assert call(gw, "PUT", path, read, change).status_code == 403
    edited = call(gw, "PUT", path, admin, change)
    assert edited.status_code == 201, edited.text
    new = edited.json()
    assert new["id"] != pinned and new["expected"] == "A" and new["archived_at"] is None
    old = call(gw, "GET", path, read).json()
    assert old["expected"] is None and old["inputs"] == {"q": "a"}  # as it was pinned
    assert old["archived_at"] is not None and old["replaced_by"] == new["id"]
    assert call(gw, "PUT", path, admin, change).status_code == 404  # archived: edit the new one
    assert [i["id"] for i in items(gw)] == [new["id"]]
    assert [i["id"] for i in items(gw, archived="true")] == [pinned]
    new_path = f"/api/v1/datasets/golden/items/{new['id']}"
    assert call(gw, "DELETE", new_path, read).status_code == 403
    assert call(gw, "DELETE", new_path, admin).status_code == 204
    assert call(gw, "GET", new_path, read).json()["archived_at"] is not None
    assert items(gw) == []
    assert call(gw, "GET", "/api/v1/datasets/golden/items/nope", read).status_code == 404


def test_pages_and_export(gateway: LiveGateway) -> None:
    gw, admin = gateway, gateway.org.admin_key
    make(gw)
    body = {"items": [{"inputs": {"n": i}, "metadata": {"i": i}} for i in range(5)]}
    call(gw, "POST", "/api/v1/datasets/golden/items", admin, body)
    seen: list[int] = []
    cursor = ""
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = call(
            gw, "GET", "/api/v1/datasets/golden/items", gw.org.read_key, params=params
        ).json()
        seen += [i["inputs"]["n"] for i in page["data"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen == [0, 1, 2, 3, 4]
    bad = call(gw, "GET", "/api/v1/datasets/golden/items", gw.org.read_key, params={"cursor": "x"})
    assert bad.status_code == 400
    export = call(gw, "GET", "/api/v1/datasets/golden/items/export.jsonl", gw.org.read_key)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(x) for x in export.content.splitlines()]
    assert [x["inputs"]["n"] for x in lines] == [0, 1, 2, 3, 4]
    assert set(lines[0]) == {"id", "inputs", "expected", "metadata", "source_request_id"}
    # an export uploads again into another dataset as new items
    make(gw, "copy")
    again = call(
        gw,
        "POST",
        "/api/v1/datasets/copy/items/upload",
        admin,
        content=export.content,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert again.json() == {"added": 5, "skipped": 0, "error_count": 0, "errors": []}


def test_upload_reports_bad_lines_and_refuses_large_bodies(
    gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw, admin = gateway, gateway.org.admin_key
    make(gw)
    path = "/api/v1/datasets/golden/items/upload"
    jsonl = b"\n".join(
        [
            b'{"inputs": {"q": "one"}, "expected": "1"}',
            b'{"inputs": {"q": "two"}',
            b'{"messages": [{"role": "user", "content": "three"}]}',
            b"",
            b'{"inputs": {"q": "one"}, "expected": "1"}',
            b'{"expected": "no inputs"}',
        ]
    )
    nd = {"Content-Type": "application/x-ndjson"}
    assert call(gw, "POST", path, gw.org.read_key, content=jsonl, headers=nd).status_code == 403
    resp = call(gw, "POST", path, admin, content=jsonl, headers=nd)
    assert resp.status_code == 200, resp.text
    report = resp.json()
    assert report["added"] == 2 and report["skipped"] == 1 and report["error_count"] == 2
    assert [e["line"] for e in report["errors"]] == [2, 6]
    assert "not JSON" in report["errors"][0]["reason"]
    assert "at least one variable" in report["errors"][1]["reason"]
    csv = b'input,input.lang,expected\nbonjour,fr,hello\n"{""q"": 1}",,x\n"{""q"": 1}",,x\n'
    resp = call(gw, "POST", path, admin, content=csv, headers={"Content-Type": "text/csv"})
    assert resp.json() == {"added": 2, "skipped": 1, "error_count": 0, "errors": []}
    stored = {orjson.dumps(i["inputs"]) for i in items(gw)}
    assert b'{"input":"bonjour","lang":"fr"}' in stored
    bad_type = call(gw, "POST", path, admin, content=b"x", headers={"Content-Type": "text/plain"})
    assert bad_type.status_code == 415
    missing = call(gw, "POST", "/api/v1/datasets/nope/items/upload", admin, content=b"", headers=nd)
    assert missing.status_code == 404

    monkeypatch.setattr(dataset_imports, "MAX_UPLOAD_BYTES", 1000)
    big = b'{"inputs": {"q": "%d"}}\n' * 200
    too_large = call(gw, "POST", path, admin, content=big, headers=nd)
    assert too_large.status_code == 413 and too_large.json()["error"]["code"] == "body_too_large"

    def chunks() -> Any:  # no Content-Length: counted as it streams
        for _ in range(200):
            yield b'{"inputs": {"q": "x"}}\n'

    streamed = httpx.post(
        gw.base_url + path,
        content=chunks(),
        headers={"Authorization": f"Bearer {admin}", **nd},
        timeout=15,
    )
    assert streamed.status_code == 413
    assert len(items(gw)) == 4  # nothing from the refused uploads


def test_from_requests_by_ids_and_by_filter(gateway_any: LiveGateway) -> None:
    gw, admin = gateway_any, gateway_any.org.admin_key
    make(gw)
    a = [send(gw, f"question {i}", model="gpt-4o-mini") for i in range(3)]
    b = [send(gw, f"other {i}", model="gpt-4o") for i in range(2)]
    gw.wait_records(5)
    path = "/api/v1/datasets/golden/items/from-requests"
    foreign = send(gw, "not yours", key=gw.other.write_key)
    by_ids = call(gw, "POST", path, admin, {"ids": [b[0], foreign, "nope"]})
    assert by_ids.status_code == 200, by_ids.text
    got = by_ids.json()
    assert got["added"] == 1 and got["error_count"] == 2
    assert {e["request_id"] for e in got["errors"]} == {foreign, "nope"}
    item = items(gw)[0]
    assert item["source_request_id"] == b[0]
    assert item["inputs"] == {"messages": [{"role": "user", "content": "other 0"}]}
    assert item["expected"] == "Hello from the mock upstream."

    query = {"params": {"model": "gpt-4o-mini"}, "dry_run": True}
    dry = call(gw, "POST", path, admin, query)
    assert dry.json() == {"matching": 3, "limit": 10_000, "would_add": 3}
    assert len(items(gw)) == 1  # a dry run adds nothing
    tree = {"request": {"model": {"equals": "gpt-4o-mini"}}}
    capped = call(gw, "POST", path, admin, {"filter": tree, "limit": 2, "expected": False}).json()
    assert capped["matching"] == 3 and capped["added"] == 2
    newest = {i["source_request_id"]: i for i in items(gw)}
    assert set(newest) == {b[0], a[2], a[1]} and newest[a[2]]["expected"] is None
    whole = {"params": {"model": "gpt-4o-mini"}}  # with expected: new content for all three
    assert call(gw, "POST", path, admin, whole).json()["added"] == 3
    again = call(gw, "POST", path, admin, whole).json()
    assert again["added"] == 0 and again["skipped"] == 3
    assert call(gw, "POST", path, gw.org.read_key, query).status_code == 403
    for bad in (
        {},
        {"ids": [a[0]], "filter": "all"},
        {"params": {"nope": "x"}},
        {"filter": {"bogus": 1}},
        {"filter": "all", "limit": 10_001},
        {"ids": []},
    ):
        assert call(gw, "POST", path, admin, bad).status_code == 400, bad
