"""Feedback and scores: write-key only, upserts, organization isolation, shown and filterable."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from conftest import LiveGateway
from heliograph.store.engine import make_engine
from heliograph.store.schema import request_feedback, request_scores
from query_support import dataset


def post(gw: LiveGateway, rid: str, what: str, body: Any, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or gw.org.write_key}"}
    url = f"{gw.base_url}/v1/request/{rid}/{what}"
    return httpx.post(url, json=body, headers=headers, timeout=10)


def setup(gw: LiveGateway) -> dict[str, str]:
    gw.app.web.state.feedback_wait_s = 0.3
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        return dataset(engine, gw.org.id, gw.other.id)
    finally:
        engine.dispose()


def counts(gw: LiveGateway) -> tuple[int, int]:
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        with engine.connect() as conn:
            fb = conn.execute(select(func.count()).select_from(request_feedback)).scalar_one()
            sc = conn.execute(select(func.count()).select_from(request_scores)).scalar_one()
    finally:
        engine.dispose()
    return fb, sc


def test_feedback_and_scores_are_idempotent_upserts(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = setup(gw)
    rid = ids["r2"]
    assert gw.record(rid)["feedback"] is None and gw.record(rid)["scores"] == {}
    before = counts(gw)
    for _ in range(2):
        resp = post(gw, rid, "feedback", {"rating": True})
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"data": {"request_id": rid, "rating": True}, "error": None}
    assert counts(gw)[0] == before[0] + 1
    assert post(gw, rid, "feedback", {"rating": False}).status_code == 200
    assert gw.record(rid)["feedback"] is False
    body = {"scores": {"accuracy": 7, "helpful": True, "f1": 0.25}}
    for _ in range(2):
        resp = post(gw, rid, "score", body)
        assert resp.status_code == 200, resp.text
    assert resp.json()["data"]["scores"] == {"accuracy": 7, "helpful": 1, "f1": 0.25}
    assert post(gw, rid, "score", {"scores": {"accuracy": 8, "helpful": False}}).status_code == 200
    assert counts(gw)[1] == before[1] + 3
    assert gw.record(rid)["scores"] == {"accuracy": 8, "f1": 0.25, "helpful": 0}
    # The admin key may write too; both are filterable at once.
    assert post(gw, rid, "score", {"scores": {"x": 1}}, gw.org.admin_key).status_code == 200
    tree = {
        "left": {"request_response_rmt": {"feedback": {"equals": False}}},
        "operator": "and",
        "right": {"request_response_rmt": {"scores.accuracy": {"equals": 8}}},
    }
    resp = httpx.post(
        gw.base_url + "/v1/request/query",
        json={"filter": tree},
        headers={"Authorization": f"Bearer {gw.org.read_key}"},
    )
    found = resp.json()["data"]
    assert [r["id"] for r in found] == [rid] and found[0]["scores"]["x"] == 1


def test_scopes_and_organizations(gateway: LiveGateway) -> None:
    gw = gateway
    ids = setup(gw)
    mine, theirs = ids["r0"], ids["x9"]
    assert post(gw, mine, "feedback", {"rating": True}, gw.org.read_key).status_code == 403
    assert post(gw, mine, "score", {"scores": {"a": 1}}, gw.org.read_key).status_code == 403
    assert httpx.post(f"{gw.base_url}/v1/request/{mine}/feedback", json={}).status_code == 401
    # A write key can annotate but never read back.
    assert gw.api(f"/api/v1/requests/{mine}", key=gw.org.write_key).status_code == 403
    started = time.monotonic()
    for rid in (theirs, "not-a-uuid"):
        for what, body in (("feedback", {"rating": True}), ("score", {"scores": {"a": 1}})):
            resp = post(gw, rid, what, body)
            assert resp.status_code == 404, (rid, what, resp.text)
            assert resp.json()["error"]["code"] == "not_found"
    assert time.monotonic() - started < 2  # refused within the writer wait (0.3 s each)
    assert gw.record(mine)["feedback"] is True  # untouched by the refused calls
    other = gw.api(f"/api/v1/requests/{theirs}", key=gw.other.read_key).json()
    assert other["feedback"] is True and other["scores"] == {"accuracy": 9}
    started = time.monotonic()
    assert post(gw, str(uuid.uuid4()), "feedback", {"rating": True}).status_code == 404
    assert 0.25 < time.monotonic() - started < 3  # an unknown UUID waits for the writer


def test_other_orgs_ids_answer_exactly_like_unknown_ids(gateway: LiveGateway) -> None:
    """No existence oracle: a write key cannot tell an id of another organization from an id
    stored nowhere, by the answer or by its timing."""
    gw = gateway
    ids = setup(gw)
    for what, body in (("feedback", {"rating": True}), ("score", {"scores": {"a": 1}})):
        answers = {}
        for name, rid in (("theirs", ids["x9"]), ("unknown", str(uuid.uuid4()))):
            started = time.monotonic()
            resp = post(gw, rid, what, body)
            elapsed = time.monotonic() - started
            assert resp.status_code == 404, resp.text
            answers[name] = (resp.json()["error"]["message"].replace(rid, "<id>"), elapsed)
        (theirs, theirs_s), (unknown, unknown_s) = answers["theirs"], answers["unknown"]
        assert theirs == unknown
        assert theirs_s >= 0.29 and unknown_s >= 0.29  # both waited the whole writer wait
        assert abs(theirs_s - unknown_s) < 0.15, answers
    other = gw.api(f"/api/v1/requests/{ids['x9']}", key=gw.other.read_key).json()
    assert other["scores"] == {"accuracy": 9}  # untouched


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("feedback", {}),
        ("feedback", {"rating": "yes"}),
        ("feedback", {"rating": 1}),
        ("feedback", {"rating": None}),
        ("feedback", [True]),
        ("score", {}),
        ("score", {"scores": {}}),
        ("score", {"scores": []}),
        ("score", {"scores": {"a": "high"}}),
        ("score", {"scores": {"a": None}}),
        ("score", {"scores": {"a": 1e300}}),
        ("score", {"scores": {"": 1}}),
        ("score", {"scores": {"n" * 256: 1}}),
        ("score", {"scores": {f"s{i}": 1 for i in range(101)}}),
    ],
)
def test_bad_bodies_are_400(gateway: LiveGateway, what: str, body: Any) -> None:
    gw = gateway
    ids = setup(gw)
    resp = post(gw, ids["r0"], what, body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["message"]


def test_feedback_right_after_the_response(gateway_any: LiveGateway) -> None:
    """A client that rates a response at once must not get a 404 because of writer lag."""
    gw = gateway_any
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    resp = httpx.post(gw.openai_url + "/chat/completions", json=chat)
    rid = resp.headers["helicone-id"]
    assert post(gw, rid, "feedback", {"rating": True}).status_code == 200
    assert post(gw, rid, "score", {"scores": {"quality": 4}}).status_code == 200
    record = gw.record(rid)
    assert record["feedback"] is True and record["scores"] == {"quality": 4}
