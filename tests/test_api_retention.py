"""The retention API and dashboard page over HTTP: who may read and change the policy, the
checks and their error shape, one organization's override never showing in another, and a
record whose body retention deleted still opening on its page."""

from __future__ import annotations

import time
from typing import Any

import httpx
from sqlalchemy import update

from conftest import LiveGateway
from heliograph.retention.run import Pass
from heliograph.store import retention as store
from heliograph.store.engine import make_engine
from heliograph.store.schema import requests
from web_support import WebClient, add_user, send

URL = "/api/v1/retention"
DAY = 86_400_000


def call(gw: LiveGateway, method: str, key: str, body: Any = None) -> httpx.Response:
    return httpx.request(
        method,
        gw.base_url + URL,
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    )


def test_api_reads_and_replaces_the_policy(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    first = call(gw, "GET", gw.org.read_key)
    assert first.status_code == 200
    assert first.json() == {
        "bodies_days": None, "records_days": None, "rollups_days": None,
        "sources": {"bodies_days": "default", "records_days": "default",
                    "rollups_days": "default"},
        "override": {"bodies_days": None, "records_days": None, "rollups_days": None},
        "defaults": {"bodies_days": None, "records_days": None, "rollups_days": None},
        "updated_at": None, "updated_by": None,
    }  # fmt: skip
    for key in (gw.org.read_key, gw.org.write_key):
        refused = call(gw, "PUT", key, {"bodies_days": 7})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "insufficient_scope"
    assert call(gw, "GET", gw.org.write_key).status_code == 403
    assert call(gw, "GET", "nope").status_code == 401
    put = call(gw, "PUT", gw.org.admin_key, {"bodies_days": 7, "records_days": 90})
    assert put.status_code == 200, put.text
    doc = put.json()
    assert (doc["bodies_days"], doc["records_days"], doc["rollups_days"]) == (7, 90, None)
    assert doc["sources"]["bodies_days"] == "organization"
    assert doc["sources"]["rollups_days"] == "default"
    assert doc["updated_by"].startswith("key:") and doc["updated_at"]
    assert call(gw, "GET", gw.org.read_key).json() == doc
    assert call(gw, "GET", gw.other.read_key).json()["bodies_days"] is None  # org b unchanged
    never = call(gw, "PUT", gw.org.admin_key, {"records_days": 0}).json()
    assert never["records_days"] is None and never["sources"]["records_days"] == "organization"
    assert never["bodies_days"] is None and never["override"]["bodies_days"] is None


def test_api_rejects_bad_policies_in_the_error_shape(gateway: LiveGateway) -> None:
    gw = gateway
    cases = [
        ({"bodies_days": 30, "records_days": 7}, "records_days (7) must be at least bodies_days"),
        ({"bodies_days": 36501}, "between 1 and 36500"),
        ({"bodies_days": -1}, "between 1 and 36500"),
        ({"records_days": "30"}, "whole number of days"),
        ({"records_days": 1.5}, "whole number of days"),
        ({"keep": 3}, "unknown field 'keep'"),
    ]
    for body, message in cases:
        resp = call(gw, "PUT", gw.org.admin_key, body)
        assert resp.status_code == 400, body
        error = resp.json()["error"]
        assert message in error["message"] and error["code"] == "invalid_parameter", error
    assert call(gw, "PUT", gw.org.admin_key, [1]).status_code == 400
    assert call(gw, "GET", gw.org.read_key).json()["override"]["bodies_days"] is None


def test_page_shows_the_policy_and_admins_change_it(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    add_user(gw, "viewer@example.com", role="viewer")
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        with WebClient(gw, "viewer@example.com") as web:
            page = web.get("/settings/retention")
            assert page.status_code == 200 and 'id="viewer-note"' in page.text
            assert 'id="retention-form"' not in page.text and "for ever" in page.text
            assert web.post("/settings/retention", {"bodies_days": "3"}).status_code == 403
        assert store.get_override(engine, gw.org.id) is None
        with WebClient(gw, "admin@example.com") as web:
            bad = web.post("/settings/retention", {"bodies_days": "30", "records_days": "7"})
            assert bad.status_code == 400 and "must be at least bodies_days" in bad.text
            assert 'value="30"' in bad.text  # what was typed stays
            hostile = web.post("/settings/retention", {"bodies_days": "<b>x</b>"})
            assert hostile.status_code == 400 and "<b>x</b>" not in hostile.text
            ok = web.post("/settings/retention", {"bodies_days": "3", "records_days": ""})
            assert ok.status_code == 303
            shown = web.get(ok.headers["location"])
            assert 'id="retention-saved"' in shown.text
            assert '<td class="kept">3 days</td>' in shown.text
            assert "this organization" in shown.text
            no_csrf = web.post("/settings/retention", {"bodies_days": "9"}, csrf="")
            assert no_csrf.status_code == 403
        override = store.get_override(engine, gw.org.id)
        assert override is not None and override["bodies_days"] == 3
        assert override["records_days"] is None and override["updated_by"].startswith("user:")
    finally:
        engine.dispose()


def test_request_page_of_a_record_whose_body_retention_deleted(gateway: LiveGateway) -> None:
    gw = gateway
    add_user(gw, "admin@example.com")
    old = send(gw, "an old secret prompt")
    young = send(gw, "a young prompt")
    gw.wait_records(2)
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                update(requests)
                .where(requests.c.id == old)
                .values(created_at=int(time.time() * 1000) - 10 * DAY)
            )
        store.set_override(engine, gw.org.id, {"bodies_days": 5}, None)
        [result] = Pass(engine, gw.settings).run(only_org=gw.org.id)
        assert result.bodies == 1 and result.records == 0
    finally:
        engine.dispose()
    with WebClient(gw, "admin@example.com") as web:
        page = web.get(f"/requests/{old}")
        assert page.status_code == 200
        assert "Body deleted by retention: this organization keeps bodies 5 days." in page.text
        assert "an old secret prompt" not in page.text
        kept = web.get(f"/requests/{young}")
        assert kept.status_code == 200 and "a young prompt" in kept.text
        assert 'id="bodies-note"' not in kept.text
    api = httpx.get(
        f"{gw.base_url}/api/v1/requests/{old}",
        headers={"Authorization": f"Bearer {gw.org.read_key}"},
        timeout=15,
    )
    assert api.status_code == 200 and api.json()["request_body"] is None
