"""The Requests table's column choice (kept in the URL and in every link), its new columns,
the live feed's fields, and the request page's newer/older links within a filtered list."""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from starlette.datastructures import QueryParams

from conftest import LiveGateway
from heliograph.web import columns
from heliograph.web.request_detail import timing, tok_s
from mock_upstream import MockUpstream
from web_support import WebClient, add_user, row_ids, send


def heads(page: str) -> list[str]:
    return re.findall(r'<th data-col="([^"]+)"', page)


def links(page: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'href="(/requests\?[^"]*)"', page)]


def test_columns_are_read_from_the_url() -> None:
    assert columns.chosen(QueryParams("")) == columns.DEFAULT
    assert "stream" not in columns.DEFAULT and "error" not in columns.DEFAULT
    assert {"tps", "where"} <= set(columns.DEFAULT)
    assert columns.chosen(QueryParams("cols=error,tps")) == ("time", "tps", "error")
    assert columns.chosen(QueryParams("col=stream&col=model")) == ("time", "model", "stream")
    assert columns.chosen(QueryParams("cols=bogus")) == columns.DEFAULT
    assert columns.param(columns.DEFAULT) == ""
    assert columns.param(("time", "error")) == "time,error"


def test_throughput_and_cold_start_wording() -> None:
    assert tok_s(41.234) == "41.2 tok/s" and tok_s(None) == "—"
    cold = timing({"latency_ms": 3000.0, "ttft_ms": 2500.0, "load_ms": 2000.0, "cold_start": True})
    warm = timing({"latency_ms": 300.0, "ttft_ms": 100.0, "load_ms": 20.0, "cold_start": False})
    assert cold["parts"][0]["label"] == "Cold start (model load)"
    assert warm["parts"][0]["label"] == "Model load (warm)"
    assert warm["parts"][0]["css"] == "load" and cold["parts"][0]["css"] == "cold"


def test_column_picker_and_links_keep_the_choice(gateway: LiveGateway, mock: MockUpstream) -> None:
    for i in range(3):
        send(gateway, f"column prompt {i}")
    failed = send(gateway, "this one fails", **{"x-mock-status": "500"})
    gateway.wait_records(4)
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        default = web.get("/requests").text
        assert heads(default) == list(columns.DEFAULT)
        assert 'name="col" value="stream">' in default  # offered, not shown
        # The picker's form (col=...) lands on one canonical cols= URL, filters kept.
        picked = web.http.get(
            "/requests",
            params=[("limit", "2"), ("col", "time"), ("col", "error"), ("col", "stream"),
                    ("col", "tps"), ("col", "where")],
        )  # fmt: skip
        assert picked.status_code == 303
        target = urlsplit(picked.headers["location"])
        assert parse_qs(target.query) == {"limit": ["2"], "cols": ["time,where,tps,stream,error"]}
        page = web.get(target.path + "?" + target.query).text
        assert heads(page) == ["time", "where", "tps", "stream", "error"]
        assert '<a href="/requests?limit=2">Default columns</a>' in page
        kept = [h for h in links(page) if "limit=2" in h and h != "/requests?limit=2"]
        assert len(kept) >= 2 and all("cols=time%2Cwhere%2Ctps%2Cstream%2Cerror" in h for h in kept)
        assert re.search(r'rel="next" href="[^"]*cols=time%2Cwhere', page)
        assert '<input type="hidden" name="cols" value="time,where,tps,stream,error">' in page
        # Each row: local/cloud, tokens/s, stream, error message.
        assert row_ids(page) == [failed, row_ids(page)[1]]
        first = page[page.index(f'<tr data-id="{failed}"') :]
        first = first[: first.index("</tr>")]
        assert '<span class="badge local">local</span>' in first  # the mock is on loopback
        assert "<td>no</td>" in first
        assert re.search(r'class="clip error-cell" title="[^"]+">[^<]+</td>', first)
        ok = page[page.index(f'<tr data-id="{row_ids(page)[1]}"') :]
        assert re.search(r'<td class="num">[\d.]+ tok/s</td>', ok[: ok.index("</tr>")])
        # The row's link carries the table's filters to the request page.
        assert f'href="/requests/{failed}?limit=2&amp;cols=' in page
        feed = web.get("/requests/live.json", after="0", limit="2").json()["rows"]
        assert {"tps", "where", "stream", "error", "cold", "status_title"} <= set(feed[0])
        assert feed[0]["id"] == failed and feed[0]["error"] and feed[0]["stream"] == "no"


def test_newer_and_older_links_walk_the_filtered_list(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    for i, model in enumerate(["gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o"]):
        send(gateway, f"walk {i}", model)
    everything = [r["id"] for r in gateway.wait_records(5)]  # newest first
    big = [r["id"] for r in gateway.records(model="gpt-4o")]
    assert len(big) == 3
    add_user(gateway, "admin@example.com")

    def around(page: str) -> tuple[str | None, str | None]:
        newer = re.search(r'rel="prev" id="newer-link" class="button" href="([^"]+)"', page)
        older = re.search(r'rel="next" id="older-link" class="button" href="([^"]+)"', page)
        return (
            html.unescape(newer.group(1)) if newer else None,
            html.unescape(older.group(1)) if older else None,
        )

    with WebClient(gateway, "admin@example.com") as web:
        middle = everything[2]
        newer, older = around(web.get(f"/requests/{middle}").text)
        assert newer == f"/requests/{everything[1]}" and older == f"/requests/{everything[3]}"
        assert around(web.get(f"/requests/{everything[0]}").text)[0] is None
        assert around(web.get(f"/requests/{everything[-1]}").text)[1] is None
        # Opened from the table filtered to one model: the links skip the other model.
        page = web.get(f"/requests/{big[1]}", model="gpt-4o").text
        newer, older = around(page)
        assert newer == f"/requests/{big[0]}?model=gpt-4o"
        assert older == f"/requests/{big[2]}?model=gpt-4o"
        assert 'href="/requests?model=gpt-4o">Requests (filtered)</a>' in page
        assert around(web.get(f"/requests/{big[2]}", model="gpt-4o").text)[1] is None


def test_times_and_links_keep_the_page_timezone(gateway: LiveGateway, mock: MockUpstream) -> None:
    first, second = send(gateway, "tz one"), send(gateway, "tz two")
    stored = {r["id"]: r for r in gateway.wait_records(2)}
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        page = web.get("/requests", tz="Asia/Tokyo", cols="time,model").text
        created = dt.datetime.fromisoformat(stored[second]["created_at"].replace("Z", "+00:00"))
        tokyo = created.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%Y-%m-%d %H:%M:%S")
        assert f">{tokyo}</a>" in page
        assert f'href="/requests/{second}?cols=time%2Cmodel&amp;tz=Asia%2FTokyo"' in page
        assert '<input type="hidden" name="tz" value="Asia/Tokyo">' in page
        assert all("tz=Asia%2FTokyo" in h for h in links(page) if "cursor=" in h or "sort=" in h)
        feed = web.get("/requests/live.json", after="0", tz="Asia/Tokyo").json()["rows"]
        assert {r["id"]: r["time"] for r in feed}[second] == tokyo
        detail = web.get(f"/requests/{second}", tz="Asia/Tokyo").text
        assert f"{tokyo} Asia/Tokyo" in detail
        assert f'href="/requests/{first}?tz=Asia%2FTokyo"' in detail  # older keeps the zone


def test_sorting_by_tokens_per_second(gateway: LiveGateway, mock: MockUpstream) -> None:
    send(gateway, "fast", **{"x-mock-chunks": "40"})
    send(gateway, "slow")
    send(gateway, "failed", **{"x-mock-status": "500"})
    rows = gateway.wait_records(3)
    speed = {r["id"]: r["output_tokens_per_s"] for r in rows}
    add_user(gateway, "admin@example.com")
    with WebClient(gateway, "admin@example.com") as web:
        page = web.get("/requests").text
        assert 'href="/requests?sort=tps"' in page  # the column's header sorts
        for order, reverse in (("", True), ("asc", False)):
            ids = row_ids(
                web.get("/requests", sort="tps", **({"order": order} if order else {})).text
            )
            known = [i for i in ids if speed[i] is not None]
            assert [speed[i] for i in known] == sorted((speed[i] for i in known), reverse=reverse)
            assert len(known) == 2 and speed[ids[-1]] is None  # unknown speed sorts last
