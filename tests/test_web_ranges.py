"""Extreme and broken time ranges on every page and API endpoint that takes one: a clear
answer (narrowed, reported, or a 400), never a 500, on both store dialects."""

from __future__ import annotations

import time

from starlette.datastructures import QueryParams

from conftest import LiveGateway
from heliograph.web.query import DAY, parse_window
from web_support import WebClient, add_user, send

# (since, until): years 1 and 9999, past them once offsets apply, huge and odd numbers, junk.
RANGES = [
    ("0001-01-01", "9999-12-31"),
    ("0001-01-01T00:00", "0001-01-02T00:00"),
    ("9999-12-30T00:00", "9999-12-31T23:59"),
    ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"),
    ("-99999999999999", "99999999999999999999"),
    ("1", "253402300799999"),
    ("nan", "inf"),
    ("never", "2026-13-45"),
]
WINDOW_PAGES = ("/", "/models", "/users", "/sessions", "/users/alice")
FILTER_PAGES = ("/requests", "/requests/live.json", "/requests/export.csv", "/sessions/s-1")
API = (
    "/api/v1/requests",
    "/api/v1/requests/export",
    "/api/v1/costs",
    "/api/v1/analytics/summary",
    "/api/v1/analytics/timeseries",
    "/api/v1/analytics/breakdown",
)


def test_custom_ranges_are_narrowed_to_recordable_time() -> None:
    window = parse_window(QueryParams("range=custom&since=0001-01-01&until=9999-12-31"))
    assert window.key == "custom" and not window.error
    assert window.since_ms == 0 and window.until_ms <= time.time() * 1000 + DAY + 366 * DAY
    assert "narrowed to 1970-01-01" in window.note and len(window.starts) <= 61
    assert window.request_params()["since"].startswith("1970-01-01")
    nothing = parse_window(QueryParams("range=custom&since=0001-01-01&until=0001-01-02"))
    assert nothing.key == "24h" and "no request can have been recorded" in nothing.error
    for since, until in (RANGES[4], *RANGES[6:]):
        broken = parse_window(QueryParams({"range": "custom", "since": since, "until": until}))
        assert broken.key == "24h" and broken.error, (since, until)


def test_extreme_ranges_never_fail_a_page_or_the_api(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    send(gw, "hi", **{"Helicone-User-Id": "alice", "Helicone-Session-Id": "s-1"})
    gw.wait_records(1)
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:
        for since, until in RANGES:
            for path in WINDOW_PAGES:
                resp = web.get(path, range="custom", since=since, until=until)
                assert resp.status_code == 200, (path, since, until, resp.text[:300])
                assert 'class="notice' in resp.text or since == "1", (path, since, until)
            for path in FILTER_PAGES:
                resp = web.get(path, since=since, until=until)
                assert resp.status_code == 200, (path, since, until, resp.text[:300])
            live = web.get("/requests/live.json", after=since)
            assert live.status_code in (200, 400), (since, live.text[:300])
        everything = web.get("/", range="custom", since="0001-01-01", until="9999-12-31").text
        assert "narrowed to 1970-01-01" in everything
        assert '<span class="value">1</span>' in everything  # the request is counted
        listed = web.get("/requests", since="0001-01-01", until="9999-12-31T23:59:59.999Z")
        assert 'data-id="' in listed.text and "notice err" not in listed.text
    for since, until in RANGES:
        for path in API:
            resp = gw.api(path, since=since, until=until)
            assert resp.status_code in (200, 400), (path, since, until, resp.text[:300])
            if resp.status_code == 400:
                message = resp.json()["error"]["message"]
                assert "since" in message or "until" in message, (path, message)
        unpriced = gw.api("/api/v1/costs/unpriced-models", since=since)
        assert unpriced.status_code in (200, 400), (since, unpriced.text[:300])
    whole = gw.api("/api/v1/analytics/summary", since="0001-01-01", until="9999-12-31").json()
    assert whole["requests"] == 1 and whole["since"].startswith("0001-01-01")
    series = gw.api("/api/v1/analytics/timeseries", since="0001-01-01", until="9999-12-31")
    assert sum(p["requests"] for p in series.json()["data"]) == 1
    too_early = gw.api("/api/v1/requests", since="-99999999999999")
    assert too_early.status_code == 400 and "years 1 to 9999" in too_early.text
