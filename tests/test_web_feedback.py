"""Feedback and scores sent through the API show up in the dashboard and filter it."""

from __future__ import annotations

import httpx

from conftest import LiveGateway
from web_support import WebClient, add_user, row_ids, send


def rate(gw: LiveGateway, rid: str, rating: bool, **scores: float) -> None:
    headers = {"Authorization": f"Bearer {gw.org.write_key}"}
    resp = httpx.post(
        f"{gw.base_url}/v1/request/{rid}/feedback", json={"rating": rating}, headers=headers
    )
    assert resp.status_code == 200, resp.text
    if scores:
        resp = httpx.post(
            f"{gw.base_url}/v1/request/{rid}/score", json={"scores": scores}, headers=headers
        )
        assert resp.status_code == 200, resp.text


def test_feedback_and_scores_are_shown_and_filterable(gateway: LiveGateway) -> None:
    good, bad, none = (send(gateway, f"question {i}") for i in range(3))
    gateway.wait_records(3)
    rate(gateway, good, True, accuracy=0.9)
    rate(gateway, bad, False)
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        detail = web.get(f"/requests/{good}").text
        assert "positive" in detail and "accuracy" in detail and "0.9" in detail
        assert "negative" in web.get(f"/requests/{bad}").text
        assert ">none<" in web.get(f"/requests/{none}").text
        assert row_ids(web.get("/requests", feedback="good").text) == [good]
        assert row_ids(web.get("/requests", feedback="bad").text) == [bad]
        assert set(row_ids(web.get("/requests").text)) == {good, bad, none}
