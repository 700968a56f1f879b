"""Sessions, Users, Groups and Tasks pages over real HTTP on both dialects: the sessions list
(columns, search, SQL sort in the URL, pages), the session transcript, the user page's
per-model and per-day tables, sortable tables everywhere, hostile stored text escaped."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from markupsafe import escape

from conftest import LiveGateway
from heliograph.web import sessions as session_pages
from web_support import WebClient, add_user, send

XSS = ("<script>alert(1)</script>", '"><img src=x onerror=alert(1)>')


def chat(
    gw: LiveGateway, messages: list[dict[str, Any]], model: str = "gpt-4o-mini", **headers: str
) -> str:
    """One chat request with a whole history; returns the record id."""
    resp = httpx.post(
        f"{gw.base_url}/v1/{gw.org.write_key}/chat/completions",
        json={"model": model, "messages": messages},
        headers={"authorization": "Bearer sk-test", **headers},
        timeout=15,
    )
    assert resp.status_code == int(headers.get("x-mock-status", 200)), resp.text
    return resp.headers["heliograph-id"]


def conversation(gw: LiveGateway, session: str, name: str, user: str, turns: int) -> list[str]:
    """A multi-turn chat that resends its history; replies are ``tok0 ... tok<i>``."""
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    ids = []
    for i in range(turns):
        history.append({"role": "user", "content": f"question {i} from {user}"})
        headers = {
            "Helicone-Session-Id": session,
            "Helicone-Session-Name": name,
            "Helicone-User-Id": user,
            "x-mock-chunks": str(i + 1),
        }
        ids.append(chat(gw, history, **headers))
        history.append({"role": "assistant", "content": " ".join(f"tok{k}" for k in range(i + 1))})
    return ids


def session_rows(page: str) -> list[str]:
    return [html.unescape(s) for s in re.findall(r'<tr data-session="([^"]+)"', page)]


def cells(page: str, session: str) -> list[str]:
    row = re.search(rf'<tr data-session="{re.escape(session)}">(.*?)</tr>', page, re.S)
    assert row, page[:3000]
    return [
        " ".join(re.sub(r"<[^>]+>", " ", c).split())
        for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]


def test_sessions_list_search_sort_and_pages(
    gateway_any: LiveGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gw = gateway_any
    conversation(gw, "trip-1", "Trip to Oslo", "alice", 3)
    conversation(gw, "s-xss", XSS[0], XSS[1], 1)
    send(gw, "big " * 300, "gpt-4o", **{"Helicone-Session-Id": "costly", "Helicone-User-Id": "bob"})
    send(gw, "boom", **{"x-mock-status": "500", "Helicone-Session-Id": "costly"})
    gw.wait_records(6)
    add_user(gw, "s@example.com")
    with WebClient(gw, "s@example.com") as web:
        page = web.get("/sessions", range="24h").text
        assert sorted(session_rows(page)) == ["costly", "s-xss", "trip-1"]
        trip = cells(page, "trip-1")
        assert trip[0].startswith("Trip to Oslo") and "trip-1" in trip[0]
        assert trip[1] == "alice" and trip[2] == "3"
        assert cells(page, "costly")[8] == "1"  # the failed request
        assert 'id="session-count">3 sessions' in page
        # hostile name and user: escaped text, never markup
        assert XSS[0] not in page and XSS[1] not in page
        assert str(escape(XSS[0])) in page and str(escape(XSS[1])) in page
        # sort in the URL, in SQL: most requests first, then fewest
        by_requests = web.get("/sessions", range="24h", sort="-requests").text
        assert session_rows(by_requests)[0] == "trip-1"
        fewest = web.get("/sessions", range="24h", sort="requests").text
        assert session_rows(fewest)[0] == "s-xss"
        cost = web.get("/sessions", range="24h", sort="-cost").text
        assert session_rows(cost)[0] == "costly"
        assert 'aria-sort="descending"' in cost
        assert "sort=cost" in html.unescape(cost)  # the header flips to ascending
        # search by name, user and id
        for text, want in (("oslo", ["trip-1"]), ("ALICE", ["trip-1"]), ("cost", ["costly"])):
            found = web.get("/sessions", range="24h", q=text).text
            assert session_rows(found) == want, text
        none = web.get("/sessions", range="24h", q=XSS[0]).text
        assert session_rows(none) == ["s-xss"] and XSS[0] not in none
        assert "No session in this time range matches" in web.get("/sessions", q="zzz").text
        # pages of one: every session once, in order, the sort kept
        monkeypatch.setattr(session_pages, "PAGE_SIZE", 1)
        seen: list[str] = []
        url: str | None = "/sessions?range=24h&sort=-requests"
        while url:
            body = web.http.get(url).text
            seen += session_rows(body)
            nxt = re.search(r'<a rel="next" href="([^"]+)"', body)
            url = html.unescape(nxt.group(1)) if nxt else None
            if url:
                assert "sort=-requests" in url and "cursor=" in url
        assert seen == ["trip-1", "costly", "s-xss"]
        bad = web.get("/sessions", range="24h", cursor="garbage").text
        assert "no longer valid" in bad and len(session_rows(bad)) == 1


def test_session_transcript_page(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = conversation(gw, "chat-7", "Birthday plans", "carol", 3)
    xss = chat(
        gw,
        [{"role": "user", "content": XSS[0]}, {"role": "assistant", "content": XSS[1]}],
        **{"Helicone-Session-Id": "chat-7"},
    )
    gw.wait_records(4)
    add_user(gw, "t@example.com")
    with WebClient(gw, "t@example.com") as web:
        page = web.get("/sessions/chat-7").text
        assert (
            '<h1><span class="muted">Session</span> <span class="session-title">Birthday plans</span></h1>'
            in page
        )
        transcript = re.search(r'<ol class="transcript" id="transcript">(.*?)</ol>', page, re.S)
        assert transcript, page[:3000]
        turns = re.findall(
            r'<li class="turn turn-(\w+)[^"]*" data-request="([^"]+)".*?<div class="text">(.*?)</div>',
            transcript.group(1),
            re.S,
        )
        got = [(role, rid, html.unescape(text)) for role, rid, text in turns]
        want = [("system", ids[0], "Be brief.")]
        for i, rid in enumerate(ids):
            want.append(("user", rid, f"question {i} from carol"))
            want.append(("assistant", rid, " ".join(f"tok{k}" for k in range(i + 1))))
        assert got[: len(want)] == want
        # the last request is another thread: its messages are escaped text
        assert [t[0] for t in got[len(want) :]] == ["user", "assistant", "assistant"]
        assert {t[1] for t in got[len(want) :]} == {xss}
        assert XSS[0] not in page and XSS[1] not in page
        assert str(escape(XSS[0])) in page and str(escape(XSS[1])) in page
        assert "separate thread" in page
        for rid in ids:
            assert f'href="/requests/{rid}"' in page
        # the request tree is kept below the transcript
        assert page.index('id="transcript"') < page.index('class="timeline"')


def test_users_user_groups_and_tasks_tables_sort(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    send(gw, "a", **{"Helicone-User-Id": "few"})
    for _ in range(3):
        send(gw, "b " * 200, "gpt-4o", **{"Helicone-User-Id": "many"})
    send(gw, "c", "gpt-4o-mini", **{"Helicone-User-Id": "many"})
    send(gw, "d", **{"Helicone-User-Id": XSS[1]})
    gw.wait_records(6)
    add_user(gw, "u@example.com")
    with WebClient(gw, "u@example.com") as web:
        users = web.get("/users", range="24h").text
        order = re.findall(r'<td class="clip person">\s*<a href="/users/([^"?]+)', users)
        assert order[0] == "many"
        assert "Avg latency" in users and XSS[1] not in users
        few_first = web.get("/users", range="24h", sort="requests").text
        assert (
            re.findall(r'<td class="clip person">\s*<a href="/users/([^"?]+)', few_first)[-1]
            == "many"
        )
        user = web.get("/users/many", range="24h").text
        models = re.search(r'<table class="compact" id="user-models">(.*?)</table>', user, re.S)
        assert models, user[:3000]
        rows = re.findall(
            r"<tr>\s*<td class=\"clip\"><a [^>]*>([^<]+)</a></td>\s*<td class=\"num\">(\d+)</td>",
            models.group(1),
        )
        assert rows == [("gpt-4o", "3"), ("gpt-4o-mini", "1")]
        asc = web.get("/users/many", range="24h", msort="requests").text
        asc_rows = re.findall(r'id="user-models">.*?</table>', asc, re.S)[0]
        assert asc_rows.index("gpt-4o-mini") < asc_rows.index(">gpt-4o<")
        assert "Avg latency" in user and "too few for a p95" in user  # 4 requests
        days = re.search(r'<table class="compact" id="user-days">(.*?)</table>', user, re.S)
        assert days and days.group(1).count("<tr>") == 2  # header and today
        assert 'id="chart-user-cost"' in user  # a day's range: cost per hour
        week = web.get("/users/many", range="7d").text
        assert 'id="chart-user-cost-per-day"' in week and 'id="chart-user-cost"' not in week
        hostile = web.get("/users/" + quote(XSS[1], safe=""), range="24h")
        assert hostile.status_code == 200 and XSS[1] not in hostile.text
        for path, param in (("/groups", "sort"), ("/tasks", "tsort")):
            assert web.get(path, range="24h", **{param: "-requests"}).status_code == 200
