"""The saved evaluators page over HTTP: admins create, edit and delete through the JSON spec
box (checked by ``parse_spec``, the field at fault named, the text kept, 400), viewers read
only (no forms, 403 on every POST), hostile names and descriptions escaped, and the page
linked from the Experiments page and the online evaluation settings."""

from __future__ import annotations

import json

from conftest import LiveGateway
from heliograph.store import evaluators as store
from heliograph.store.engine import make_engine
from web_support import WebClient, add_user

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'
SPEC = {"name": "mentions-refund", "kind": "contains", "config": {"values": ["refund"]}}


def saved(gw: LiveGateway) -> dict[str, dict[str, object]]:
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        return {r["name"]: r["spec"] for r in store.list_evaluators(engine, gw.org.id)}
    finally:
        engine.dispose()


def test_admin_creates_edits_and_deletes(gateway: LiveGateway) -> None:
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        assert 'href="/evaluators"' in web.get("/experiments").text
        assert 'href="/evaluators"' in web.get("/settings/evaluations").text
        empty = web.get("/evaluators")
        assert empty.status_code == 200 and 'id="evaluators-empty"' in empty.text
        made = web.post("/evaluators", {"spec": json.dumps(SPEC)})
        assert made.status_code == 303 and made.headers["location"] == "/evaluators"
        assert saved(gateway)["mentions-refund"]["config"]["values"] == ["refund"]
        page = web.get("/evaluators")
        assert '<tr data-evaluator="mentions-refund">' in page.text
        assert "values=[&#34;refund&#34;]" in page.text and ">contains</span>" in page.text
        again = web.post("/evaluators", {"spec": json.dumps(SPEC)})
        assert again.status_code == 409 and "already exists" in again.text
        edit = {**SPEC, "config": {"values": ["refund", "money back"]}, "description": "d"}
        edited = web.post("/evaluators/mentions-refund", {"spec": json.dumps(edit)})
        assert edited.status_code == 303
        assert saved(gateway)["mentions-refund"]["config"]["values"] == ["refund", "money back"]
        renamed = web.post(
            "/evaluators/mentions-refund", {"spec": json.dumps({**edit, "name": "x"})}
        )
        assert renamed.status_code == 400 and "<strong>name</strong>" in renamed.text
        assert 'id="edit-mentions-refund" open' in renamed.text
        assert web.post("/evaluators/nothing", {"spec": "{}"}).status_code == 404
        deleted = web.post("/evaluators/mentions-refund/delete", {})
        assert deleted.status_code == 303 and saved(gateway) == {}
        assert web.post("/evaluators/mentions-refund/delete", {}).status_code == 404


def test_mistakes_name_the_field_and_keep_the_text(gateway: LiveGateway) -> None:
    add_user(gateway, "admin@example.com")
    cases = [
        ("{not json", "spec"),
        (json.dumps({**SPEC, "kind": "telepathy"}), "kind"),
        (
            json.dumps({**SPEC, "kind": "regex", "config": {"pattern": "(unclosed"}}),
            "config.pattern",
        ),
        (json.dumps({**SPEC, "name": "bad name!"}), "name"),
        (json.dumps({**SPEC, "surprise": 1}), "surprise"),
    ]
    with WebClient(gateway, "admin@example.com") as web:
        for text, field in cases:
            resp = web.post("/evaluators", {"spec": text})
            assert resp.status_code == 400, text
            assert f'id="evaluator-error"><strong>{field}</strong> — ' in resp.text, resp.text[
                -2000:
            ]
            assert 'id="new-evaluator" open' in resp.text
            kept = text.replace("&", "&amp;").replace('"', "&#34;").replace("<", "&lt;")
            assert kept in resp.text
    assert saved(gateway) == {}


def test_viewers_read_only_and_hostile_text_escaped(gateway: LiveGateway) -> None:
    add_user(gateway, "admin@example.com")
    add_user(gateway, "viewer@example.com", role="viewer")
    spec = {**SPEC, "description": HOSTILE, "config": {"values": [HOSTILE]}}
    with WebClient(gateway, "admin@example.com") as web:
        assert web.post("/evaluators", {"spec": json.dumps(spec)}).status_code == 303
        hostile_name = web.post("/evaluators", {"spec": json.dumps({**SPEC, "name": HOSTILE})})
        assert hostile_name.status_code == 400 and HOSTILE not in hostile_name.text
        page = web.get("/evaluators")
        assert HOSTILE not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    with WebClient(gateway, "viewer@example.com") as web:
        page = web.get("/evaluators")
        assert page.status_code == 200 and '<tr data-evaluator="mentions-refund">' in page.text
        assert 'id="new-evaluator"' not in page.text and 'action="/evaluators' not in page.text
        assert HOSTILE not in page.text
        other = {**SPEC, "name": "other"}
        assert web.post("/evaluators", {"spec": json.dumps(other)}).status_code == 403
        assert (
            web.post("/evaluators/mentions-refund", {"spec": json.dumps(SPEC)}).status_code == 403
        )
        assert web.post("/evaluators/mentions-refund/delete", {}).status_code == 403
    assert set(saved(gateway)) == {"mentions-refund"}
