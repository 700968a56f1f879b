"""State every dashboard page shares through its URL: the time range kept across pages, a
default range that shows data, the chosen timezone, sortable tables and URLs without empty
parameters."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from starlette.datastructures import QueryParams

from conftest import LiveGateway
from heliograph.web.format import short_time, when
from heliograph.web.query import DAY, HOUR, default_range, local_ms, parse_tz, parse_window
from heliograph.web.sorting import TableSort
from web_support import WebClient, add_user, send

SEOUL = zoneinfo.ZoneInfo("Asia/Seoul")
NOW = 1_780_000_000_000


def test_default_range_holds_the_data() -> None:
    assert default_range(None, None, NOW) == "24h"
    assert default_range(NOW - 10 * 60_000, NOW, NOW) == "1h"  # a young install
    assert default_range(NOW - 5 * HOUR, NOW, NOW) == "24h"
    assert default_range(NOW - 7 * DAY + HOUR, NOW, NOW) == "7d"  # the demo's week
    assert default_range(NOW - 7 * DAY - 3 * HOUR, NOW, NOW) == "7d"  # ... hours later
    assert default_range(NOW - 8 * DAY, NOW, NOW) == "30d"
    assert default_range(NOW - 62 * 60_000, NOW, NOW) == "1h"
    assert default_range(NOW - 70 * 60_000, NOW, NOW) == "24h"
    assert default_range(NOW - 20 * DAY, NOW, NOW) == "30d"
    assert default_range(NOW - 400 * DAY, NOW - HOUR, NOW) == "24h"  # old and busy
    assert default_range(NOW - 400 * DAY, NOW - 3 * DAY, NOW) == "7d"  # old, quiet lately
    assert default_range(NOW - 400 * DAY, NOW - 90 * DAY, NOW) == "24h"  # nothing recent


def test_timezones_are_parsed_and_bad_ones_reported() -> None:
    assert parse_tz(None) == (dt.UTC, "")
    assert parse_tz("Asia/Seoul") == (SEOUL, "")
    zone, error = parse_tz("../../etc/passwd")
    assert zone is dt.UTC and "Unknown timezone" in error
    zone, error = parse_tz("Mars/Olympus")
    assert zone is dt.UTC and "Mars/Olympus" in error


def test_times_show_in_the_chosen_zone() -> None:
    stamp = int(dt.datetime(2026, 12, 3, 15, 30, tzinfo=dt.UTC).timestamp() * 1000)
    assert when(stamp) == "2026-12-03 15:30:00"
    assert when(stamp, SEOUL) == "2026-12-04 00:30:00"
    assert when("2026-12-03T15:30:00.123Z", SEOUL) == "2026-12-04 00:30:00"
    assert short_time(stamp, HOUR, SEOUL) == "00:30"
    # a custom range typed in a datetime-local input is local time
    assert local_ms("2026-12-04T00:30", "since", SEOUL) == stamp
    assert local_ms("2026-12-03T15:30:00Z", "since", SEOUL) == stamp


def test_day_buckets_start_at_local_midnight() -> None:
    window = parse_window(QueryParams("range=30d"), tz=SEOUL)
    assert window.bucket_ms == DAY
    for start in window.starts:
        local = dt.datetime.fromtimestamp(start / 1000, SEOUL)
        assert (local.hour, local.minute) == (0, 0), local
    utc = parse_window(QueryParams("range=30d"))
    assert all(s % DAY == 0 for s in utc.starts)
    custom = parse_window(
        QueryParams("range=custom&since=2026-11-01T00:00&until=2026-11-20T00:00"), tz=SEOUL
    )
    first = dt.datetime.fromtimestamp(custom.since_ms / 1000, SEOUL)
    assert (first.day, first.hour) == (1, 0) and custom.since_input == "2026-11-01T00:00"


def test_table_sort_reads_and_writes_the_url() -> None:
    rows = [
        {"key": "b", "cost": 2.0, "requests": 5},
        {"key": "A", "cost": None, "requests": 9},
        {"key": "c", "cost": 7.5, "requests": 1},
    ]
    columns = ("key", "cost", "requests")
    by_default = TableSort(QueryParams("range=7d"), "/models", columns, "-requests")
    assert [r["key"] for r in by_default.apply(rows)] == ["A", "b", "c"]
    assert by_default.state("requests") == "descending" and by_default.state("cost") is None
    # the first click on a column sorts biggest first; the default sort leaves the URL clean
    assert by_default.link("cost") == "/models?range=7d&sort=-cost"
    assert by_default.link("requests") == "/models?range=7d&sort=requests"
    by_cost = TableSort(
        QueryParams("range=7d&sort=-cost&cursor=x"), "/models", columns, "-requests"
    )
    assert [r["key"] for r in by_cost.apply(rows)] == ["c", "b", "A"]  # no cost: last
    assert by_cost.link("cost") == "/models?range=7d&sort=cost"
    ascending = TableSort(QueryParams("sort=cost"), "/models", columns, "-requests")
    assert [r["key"] for r in ascending.apply(rows)] == ["b", "c", "A"]  # still last
    by_name = TableSort(QueryParams("sort=key"), "/m", columns, "-requests")
    assert [r["key"] for r in by_name.apply(rows)] == ["A", "b", "c"]  # case-insensitive
    unknown = TableSort(QueryParams("sort=-password"), "/m", columns, "-requests")
    assert unknown.value == "-requests"
    two = TableSort(QueryParams("sort=-cost"), "/m", columns, "key", param="psort")
    assert two.value == "key" and two.link("cost") == "/m?sort=-cost&psort=-cost"


def test_pages_keep_the_range_and_timezone(gateway: LiveGateway) -> None:
    gw = gateway
    send(gw, "hello", **{"Helicone-User-Id": "alice"})
    gw.wait_records(1)
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:
        # a young install opens on the last hour, not one bar at the edge of 24 h
        home = web.get("/").text
        assert re.search(r'href="/\?range=1h" aria-current="true"', home), home[:2000]
        page = web.get("/", range="7d", tz="Asia/Seoul")
        assert page.status_code == 200
        nav = page.text[page.text.index('<nav aria-label="Main">') :]
        nav = nav[: nav.index("</nav>")]
        for href in ("/requests", "/models", "/users", "/sessions", "/tasks"):
            assert f'href="{href}?range=7d&amp;tz=Asia%2FSeoul"' in nav, nav
        assert 'href="/settings"' in nav
        assert '<option value="Asia/Seoul" selected>' in page.text
        # the range links keep the zone
        assert 'href="/?tz=Asia%2FSeoul&amp;range=30d"' in page.text
        bad = web.get("/", tz="<script>alert(1)</script>")
        assert bad.status_code == 200 and "Unknown timezone" in bad.text
        assert "<script>alert(1)</script>" not in bad.text


def test_empty_parameters_are_dropped_from_urls(gateway: LiveGateway) -> None:
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        resp = web.http.get("/requests?model=&provider=&q=hi&since=&user_id=")
        assert resp.status_code == 303 and resp.headers["location"] == "/requests?q=hi"
        bare = web.http.get("/users?range=&sort=")
        assert bare.status_code == 303 and bare.headers["location"] == "/users"
        assert web.http.get("/requests?q=hi").status_code == 200
