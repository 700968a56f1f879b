"""The prompt API over real HTTP on both stores: scopes, the full lifecycle, ETags, compile,
every error it promises, and organizations that cannot see each other's prompts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from conftest import LiveGateway

V1 = {
    "messages": [
        {"role": "system", "content": "You answer in {{ language }}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "model": "gpt-4o-mini",
    "upstream": "openai",
    "params": {"temperature": 0.2, "max_tokens": 50},
    "variables": {"language": "English", "text": None},
    "message": "first cut",
}


def call(
    gw: LiveGateway, method: str, path: str, key: str, body: Any = None, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}", **kw.pop("headers", {})}
    return httpx.request(method, gw.base_url + path, json=body, headers=headers, timeout=10, **kw)


def error_code(resp: httpx.Response) -> str:
    code: str = resp.json()["error"]["code"]
    return code


def test_lifecycle_etag_and_compile(gateway_any: LiveGateway) -> None:
    gw, admin, read = gateway_any, gateway_any.org.admin_key, gateway_any.org.read_key
    made = call(gw, "POST", "/api/v1/prompts", admin, {"name": "summary", "description": "d"})
    assert made.status_code == 201, made.text
    assert made.json()["labels"] == {"production": None, "staging": None}
    assert call(gw, "POST", "/api/v1/prompts/summary/versions", admin, V1).json() == {"version": 1}
    v2 = {**V1, "params": {"temperature": 0.9}, "message": "warmer"}
    resp = call(gw, "POST", "/api/v1/prompts/summary/versions", admin, v2)
    assert resp.status_code == 201 and resp.json() == {"version": 2}

    # production points at nothing yet
    assert call(gw, "GET", "/api/v1/prompts/summary", read).status_code == 404
    moved = call(gw, "PUT", "/api/v1/prompts/summary/labels/production", admin, {"version": 1})
    assert moved.json() == {"label": "production", "version": 1, "previous_version": None}

    got = call(gw, "GET", "/api/v1/prompts/summary", read)
    assert got.status_code == 200
    doc = got.json()
    assert doc["version"] == 1 and doc["label"] == "production"
    assert doc["messages"] == V1["messages"] and doc["params"] == V1["params"]
    assert doc["variables"] == V1["variables"] and doc["message"] == "first cut"
    assert doc["created_by"].startswith("key:")
    etag = got.headers["etag"]
    assert got.headers["cache-control"] == "private, no-cache"
    again = call(gw, "GET", "/api/v1/prompts/summary", read, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    weak = call(gw, "GET", "/api/v1/prompts/summary", read, headers={"If-None-Match": "W/x"})
    assert weak.status_code == 200

    # moving the label changes the answer and its ETag
    call(gw, "PUT", "/api/v1/prompts/summary/labels/production", admin, {"version": 2})
    after = call(gw, "GET", "/api/v1/prompts/summary", read, headers={"If-None-Match": etag})
    assert after.status_code == 200 and after.json()["version"] == 2
    assert after.headers["etag"] != etag
    pinned = call(gw, "GET", "/api/v1/prompts/summary", read, params={"version": 1})
    assert pinned.json()["version"] == 1 and pinned.json()["label"] is None
    assert "immutable" in pinned.headers["cache-control"]

    compiled = call(
        gw,
        "POST",
        "/api/v1/prompts/summary/compile",
        read,
        {"inputs": {"text": "{{language}} stays", "language": "French"}, "version": 1},
    )
    assert compiled.status_code == 200, compiled.text
    assert compiled.json() == {
        "name": "summary",
        "version": 1,
        "label": None,
        "messages": [
            {"role": "system", "content": "You answer in French."},
            {"role": "user", "content": "Summarise: {{language}} stays"},
        ],
        "model": "gpt-4o-mini",
        "upstream": "openai",
        "params": {"temperature": 0.2, "max_tokens": 50},
    }
    by_label = call(gw, "POST", "/api/v1/prompts/summary/compile", read, {"inputs": {"text": 7}})
    assert by_label.json()["version"] == 2 and by_label.json()["label"] == "production"
    assert by_label.json()["messages"][0]["content"] == "You answer in English."
    assert by_label.json()["messages"][1]["content"] == "Summarise: 7"

    listed = call(gw, "GET", "/api/v1/prompts", read).json()["data"]
    assert [(p["name"], p["latest_version"], p["labels"]) for p in listed] == [
        ("summary", 2, {"production": 2, "staging": None})
    ]
    versions = call(gw, "GET", "/api/v1/prompts/summary/versions", read).json()["data"]
    assert [(v["version"], v["message"]) for v in versions] == [(2, "warmer"), (1, "first cut")]
    labels = call(gw, "GET", "/api/v1/prompts/summary/labels", read).json()
    assert [(r["label"], r["version"]) for r in labels["data"]] == [
        ("production", 2),
        ("staging", None),
    ]
    assert [(h["label"], h["from_version"], h["to_version"]) for h in labels["history"]] == [
        ("production", 1, 2),
        ("production", None, 1),
    ]


def test_nul_characters_are_refused_on_both_stores(gateway_any: LiveGateway) -> None:
    gw, admin = gateway_any, gateway_any.org.admin_key
    bad = call(gw, "POST", "/api/v1/prompts", admin, {"name": "n", "description": "a\x00b"})
    assert bad.status_code == 400
    assert call(gw, "POST", "/api/v1/prompts", admin, {"name": "n"}).status_code == 201
    for field in ("model", "upstream", "message"):
        resp = call(gw, "POST", "/api/v1/prompts/n/versions", admin, {**V1, field: "x\x00"})
        assert resp.status_code == 400 and field in resp.json()["error"]["message"], field
    with_nul = {**V1, "messages": [{"role": "user", "content": "a\x00 {{text}}"}]}
    saved = call(gw, "POST", "/api/v1/prompts/n/versions", admin, with_nul)  # JSON keeps it
    assert saved.status_code == 201, saved.text
    compiled = call(
        gw,
        "POST",
        "/api/v1/prompts/n/compile",
        gw.org.read_key,
        {"version": 1, "inputs": {"text": "b\x00"}},
    )
    assert compiled.json()["messages"] == [{"role": "user", "content": "a\x00 b\x00"}]


def test_scopes(gateway: LiveGateway) -> None:
    gw, org = gateway, gateway.org
    assert call(gw, "POST", "/api/v1/prompts", org.read_key, {"name": "x"}).status_code == 403
    assert call(gw, "POST", "/api/v1/prompts", org.write_key, {"name": "x"}).status_code == 403
    assert call(gw, "POST", "/api/v1/prompts", org.admin_key, {"name": "x"}).status_code == 201
    ok = call(gw, "POST", "/api/v1/prompts/x/versions", org.admin_key, V1)
    assert ok.status_code == 201
    for key in (org.read_key, org.write_key):
        resp = call(gw, "POST", "/api/v1/prompts/x/versions", key, V1)
        assert resp.status_code == 403
        resp = call(gw, "PUT", "/api/v1/prompts/x/labels/production", key, {"version": 1})
        assert resp.status_code == 403
    reads = [
        ("GET", "/api/v1/prompts", None),
        ("GET", "/api/v1/prompts/x?version=1", None),
        ("GET", "/api/v1/prompts/x/versions", None),
        ("GET", "/api/v1/prompts/x/labels", None),
        ("POST", "/api/v1/prompts/x/compile", {"version": 1, "inputs": {"text": "t"}}),
    ]
    for method, path, body in reads:  # a write key never reads prompts
        assert call(gw, method, path, org.write_key, body).status_code == 403, path
        assert call(gw, method, path, org.read_key, body).status_code == 200, path
    assert call(gw, "GET", "/api/v1/prompts", "hg_nonsense_key_000000").status_code == 401


def test_errors(gateway: LiveGateway) -> None:
    gw, admin, read = gateway, gateway.org.admin_key, gateway.org.read_key
    call(gw, "POST", "/api/v1/prompts", admin, {"name": "p"})
    dup = call(gw, "POST", "/api/v1/prompts", admin, {"name": "p", "description": "again"})
    assert dup.status_code == 409 and error_code(dup) == "conflict"
    for bad in ({"name": "Has Space"}, {"name": ""}, {"name": "x" * 101}, {"name": "a:b"}, []):
        assert call(gw, "POST", "/api/v1/prompts", admin, bad).status_code == 400, bad
    broken = {"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": "a {{b"}]}
    resp = call(gw, "POST", "/api/v1/prompts/p/versions", admin, broken)
    assert resp.status_code == 400 and error_code(resp) == "invalid_template"
    assert "messages[1]" in resp.json()["error"]["message"]
    assert "character 2" in resp.json()["error"]["message"]
    bad_params = {**V1, "params": {"frequency_penalty": 1}}
    resp = call(gw, "POST", "/api/v1/prompts/p/versions", admin, bad_params)
    assert resp.status_code == 400 and "frequency_penalty" in resp.json()["error"]["message"]
    assert call(gw, "POST", "/api/v1/prompts/nope/versions", admin, V1).status_code == 404
    call(gw, "POST", "/api/v1/prompts/p/versions", admin, V1)

    bad_label = call(gw, "PUT", "/api/v1/prompts/p/labels/Bad%20Label", admin, {"version": 1})
    assert bad_label.status_code == 400
    resp = call(gw, "PUT", "/api/v1/prompts/p/labels/canary", admin, {"version": 9})
    assert resp.status_code == 404 and "version 9" in resp.json()["error"]["message"]
    for body in ({"version": "1"}, {"version": 0}, {}, {"version": 1, "x": 2}):
        resp = call(gw, "PUT", "/api/v1/prompts/p/labels/canary", admin, body)
        assert resp.status_code == 400, body
    assert call(gw, "PUT", "/api/v1/prompts/p/labels/canary", admin, {"version": 1}).is_success

    assert call(gw, "GET", "/api/v1/prompts/nope", read).status_code == 404
    resp = call(gw, "GET", "/api/v1/prompts/p", read, params={"label": "ghost"})
    assert resp.status_code == 404 and "no label 'ghost'" in resp.json()["error"]["message"]
    assert call(gw, "GET", "/api/v1/prompts/p", read, params={"version": 5}).status_code == 404
    both = call(gw, "GET", "/api/v1/prompts/p", read, params={"version": 1, "label": "canary"})
    assert both.status_code == 400
    for params in ({"lable": "canary"}, {"label": "a\x00"}):  # refused, never ignored
        resp = call(gw, "GET", "/api/v1/prompts/p", read, params=params)
        assert resp.status_code == 400, params
    unknown = call(gw, "GET", "/api/v1/prompts", read, params={"limit": 5})
    assert unknown.status_code == 400 and error_code(unknown) == "unknown_parameter"
    for version in ("x", "-1", "0", "9" * 5000):
        resp = call(gw, "GET", "/api/v1/prompts/p", read, params={"version": version})
        assert resp.status_code == 400, version

    compile_path = "/api/v1/prompts/p/compile"
    missing = call(gw, "POST", compile_path, read, {"label": "canary", "inputs": {}})
    assert missing.status_code == 400 and error_code(missing) == "missing_variable"
    assert "'text'" in missing.json()["error"]["message"]
    for inputs in ([], "text", {"text": None}, {"text": {"a": 1}}):
        resp = call(gw, "POST", compile_path, read, {"label": "canary", "inputs": inputs})
        assert resp.status_code == 400 and error_code(resp) == "invalid_inputs", inputs
    huge = call(
        gw, "POST", compile_path, read, {"label": "canary", "inputs": {"text": "x" * 70000}}
    )
    assert huge.status_code == 413 and error_code(huge) == "inputs_too_large"
    body_too_big = {"label": "canary", "inputs": {"text": "x" * (1 << 20)}}
    assert call(gw, "POST", compile_path, read, body_too_big).status_code == 413
    assert call(gw, "POST", compile_path, read, {"label": "ghost"}).status_code == 404
    assert call(gw, "POST", compile_path, read, {"version": 3}).status_code == 404


def test_other_organizations_see_nothing(gateway: LiveGateway) -> None:
    gw, mine, theirs = gateway, gateway.org, gateway.other
    call(gw, "POST", "/api/v1/prompts", mine.admin_key, {"name": "secret"})
    call(gw, "POST", "/api/v1/prompts/secret/versions", mine.admin_key, V1)
    call(gw, "PUT", "/api/v1/prompts/secret/labels/production", mine.admin_key, {"version": 1})
    for method, path, body in [
        ("GET", "/api/v1/prompts/secret", None),
        ("GET", "/api/v1/prompts/secret?version=1", None),
        ("GET", "/api/v1/prompts/secret/versions", None),
        ("GET", "/api/v1/prompts/secret/labels", None),
        ("POST", "/api/v1/prompts/secret/compile", {"inputs": {"text": "t"}}),
    ]:
        assert call(gw, method, path, theirs.read_key, body).status_code == 404, path
        assert call(gw, method, path, mine.read_key, body).status_code == 200, path
    for method, path, body in [
        ("POST", "/api/v1/prompts/secret/versions", V1),
        ("PUT", "/api/v1/prompts/secret/labels/production", {"version": 1}),
    ]:
        assert call(gw, method, path, theirs.admin_key, body).status_code == 404, path
    assert call(gw, "GET", "/api/v1/prompts", theirs.read_key).json() == {"data": []}
    # the same name is free in the other organization, and stays separate
    assert call(gw, "POST", "/api/v1/prompts", theirs.admin_key, {"name": "secret"}).is_success
    mine_versions = call(gw, "GET", "/api/v1/prompts/secret/versions", mine.read_key)
    theirs_versions = call(gw, "GET", "/api/v1/prompts/secret/versions", theirs.read_key)
    assert len(mine_versions.json()["data"]) == 1 and theirs_versions.json() == {"data": []}
    labels = call(gw, "GET", "/api/v1/prompts/secret/labels", mine.read_key).json()
    assert len(labels["history"]) == 1  # the other org's attempt moved nothing


@pytest.mark.parametrize("name", ["a" * 100, "0", "snake_case-and-dash"])
def test_names_at_the_edges(gateway: LiveGateway, name: str) -> None:
    resp = call(gateway, "POST", "/api/v1/prompts", gateway.org.admin_key, {"name": name})
    assert resp.status_code == 201 and resp.json()["name"] == name
    listed = call(gateway, "GET", f"/api/v1/prompts/{name}/versions", gateway.org.read_key)
    assert listed.status_code == 200


def test_update_description_and_delete(gateway_any: LiveGateway) -> None:
    gw, admin, read = gateway_any, gateway_any.org.admin_key, gateway_any.org.read_key
    theirs = gw.other.admin_key
    assert call(gw, "POST", "/api/v1/prompts", admin, {"name": "gone", "description": "old"})
    assert call(gw, "POST", "/api/v1/prompts/gone/versions", admin, V1).status_code == 201
    call(gw, "PUT", "/api/v1/prompts/gone/labels/production", admin, {"version": 1})

    body = {"description": "new <b>text</b>"}
    assert call(gw, "PATCH", "/api/v1/prompts/gone", read, body).status_code == 403
    assert call(gw, "PATCH", "/api/v1/prompts/gone", theirs, body).status_code == 404
    for bad in ({}, {"description": 3}, {"description": "x" * 2001}, {**body, "name": "x"}):
        resp = call(gw, "PATCH", "/api/v1/prompts/gone", admin, bad)
        assert resp.status_code == 400 and error_code(resp) == "invalid_parameter", bad
    assert call(gw, "PATCH", "/api/v1/prompts/absent", admin, body).status_code == 404
    patched = call(gw, "PATCH", "/api/v1/prompts/gone", admin, body)
    assert patched.status_code == 200, patched.text
    doc = patched.json()
    assert doc["description"] == "new <b>text</b>" and doc["latest_version"] == 1
    assert doc["labels"]["production"] == 1
    listed = call(gw, "GET", "/api/v1/prompts", read).json()["data"]
    assert [p["description"] for p in listed if p["name"] == "gone"] == ["new <b>text</b>"]

    assert call(gw, "DELETE", "/api/v1/prompts/gone", read).status_code == 403
    assert call(gw, "DELETE", "/api/v1/prompts/gone", theirs).status_code == 404
    deleted = call(gw, "DELETE", "/api/v1/prompts/gone", admin)
    assert deleted.status_code == 204 and deleted.content == b""
    assert call(gw, "DELETE", "/api/v1/prompts/gone", admin).status_code == 404
    for path in ("/api/v1/prompts/gone", "/api/v1/prompts/gone/versions"):
        assert call(gw, "GET", path, read).status_code == 404
    assert "gone" not in [
        p["name"] for p in call(gw, "GET", "/api/v1/prompts", read).json()["data"]
    ]
    # the name is free again, with a fresh history
    assert call(gw, "POST", "/api/v1/prompts", admin, {"name": "gone"}).status_code == 201
    assert call(gw, "POST", "/api/v1/prompts/gone/versions", admin, V1).json() == {"version": 1}
    labels = call(gw, "GET", "/api/v1/prompts/gone/labels", read).json()
    assert labels["history"] == [] and {r["version"] for r in labels["data"]} == {None}
