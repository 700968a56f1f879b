"""The read API on both store dialects: scopes, organizations, filters, pagination."""

from __future__ import annotations

import httpx

from conftest import LiveGateway

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def send(gw: LiveGateway, key: str, model: str = "gpt-4o-mini", **headers: str) -> str:
    resp = httpx.post(
        f"{gw.base_url}/v1/{key}/chat/completions",
        json={**CHAT, "model": model},
        headers={"authorization": "Bearer sk-p", **headers},
    )
    assert resp.status_code == int(headers.get("x-mock-status", 200))
    return resp.headers["heliograph-id"]


def test_scopes_and_organizations(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    mine = send(gw, gw.org.write_key)
    theirs = send(gw, gw.other.write_key)
    gw.wait_records(1)
    gw.wait_records(1, key=gw.other.read_key)
    for path in ("/api/v1/requests", f"/api/v1/requests/{mine}", "/api/v1/keys"):
        resp = gw.api(path, key=gw.org.write_key)
        assert resp.status_code == 403, path
        assert resp.json()["error"]["code"] == "insufficient_scope"
    assert gw.api("/api/v1/requests", key="hg_wrongwrongwrongwrongwrong").status_code == 401
    assert httpx.get(f"{gw.base_url}/api/v1/requests").status_code == 401
    assert gw.api("/api/v1/keys", key=gw.org.read_key).status_code == 403
    assert [r["id"] for r in gw.records()] == [mine]
    assert [r["id"] for r in gw.records(key=gw.other.read_key)] == [theirs]
    assert gw.api(f"/api/v1/requests/{theirs}").status_code == 404
    assert gw.api(f"/api/v1/requests/{mine}", key=gw.other.admin_key).status_code == 404
    assert gw.api(f"/api/v1/requests/{mine}", key=gw.org.admin_key).status_code == 200
    keys = gw.api("/api/v1/keys", key=gw.org.admin_key).json()["data"]
    assert {k["scope"] for k in keys} == {"write", "read", "admin"}
    assert all("key" not in k and "key_hash" not in k for k in keys)
    writer = next(k for k in keys if k["scope"] == "write")
    assert writer["last_used_at"] is not None


def test_filters_and_cursor_pagination(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = []
    for i in range(7):
        model = "gpt-4o" if i % 2 else "gpt-4o-mini"
        ids.append(send(gw, gw.org.write_key, model, **{"Helicone-User-Id": f"user-{i % 3}"}))
    send(gw, gw.org.write_key, **{"x-mock-status": "500", "Helicone-Session-Id": "sess"})
    rows = gw.wait_records(8)
    assert len(rows) == 8
    created = [r["created_at"] for r in rows]
    assert created == sorted(created, reverse=True)

    assert {r["model"] for r in gw.records(model="gpt-4o")} == {"gpt-4o"}
    assert len(gw.records(model="gpt-4o")) == 3
    assert len(gw.records(user_id="user-0")) == 3
    assert [r["status"] for r in gw.records(status=500)] == [500]
    assert [r["session_id"] for r in gw.records(session_id="sess")] == ["sess"]
    assert gw.records(provider="openai") and gw.records(provider="anthropic") == []
    assert len(gw.records(since="2000-01-01T00:00:00Z")) == 8
    assert gw.records(until="2000-01-01T00:00:00Z") == []

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = gw.api("/api/v1/requests", **params).json()
        seen += [r["id"] for r in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 8 and len(set(seen)) == 8
    assert seen == [r["id"] for r in rows]
    assert "request_body" not in rows[0]


def test_bad_parameters_are_400(gateway: LiveGateway) -> None:
    for params in (
        {"limit": "0"},
        {"limit": "x"},
        {"cursor": "garbage"},
        {"since": "yesterday"},
        {"status": "ok"},
        {"limit": "5000"},
    ):
        resp = gateway.api("/api/v1/requests", **params)
        assert resp.status_code == 400, params
        assert resp.json()["error"]["message"]


def test_health(gateway: LiveGateway) -> None:
    resp = httpx.get(f"{gateway.base_url}/health")
    assert resp.status_code == 200 and resp.json() == {"status": "ok"}
