"""Dashboard pages over real HTTP on both store dialects: access, organizations, filters,
sorting, pagination, live feed and export."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import orjson

from conftest import LiveGateway, gateway_settings
from heliograph.config import UpstreamConfig
from heliograph.web.dashboard import is_local
from mock_upstream import MockUpstream
from web_support import PAGES, WebClient, add_user, row_ids, send


def _traffic(gw: LiveGateway) -> dict[str, str]:
    ids = {
        "plain": send(gw, "tell me about otters", **{"Helicone-User-Id": "alice"}),
        "big": send(
            gw,
            "a much longer prompt " * 40,
            "gpt-4o",
            **{"Helicone-User-Id": "bob", "Helicone-Session-Id": "s-1"},
        ),
        "failed": send(gw, "boom", **{"x-mock-status": "500", "Helicone-Session-Id": "s-1"}),
        "tagged": send(
            gw, "with a property", **{"Helicone-Property-Team": "red", "Helicone-User-Id": "a/b c"}
        ),
    }
    gw.wait_records(4)
    return ids


def test_pages_need_login_then_render(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = _traffic(gw)
    paths = [
        *PAGES,
        f"/requests/{ids['plain']}",
        "/users/alice",
        "/sessions/s-1",
        "/requests/export.csv",
    ]
    with httpx.Client(base_url=gw.base_url) as anon:
        for path in paths:
            resp = anon.get(path)
            assert resp.status_code == 303, path
            assert resp.headers["location"] == "/login?next=" + quote(path, safe="")
        assert anon.get("/requests/live.json").status_code == 401
        assert anon.post("/settings/keys", data={"name": "x", "scope": "read"}).status_code == 303
        assert anon.get("/login").status_code == 200
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:
        for path in [*paths, "/users/" + quote("a/b c", safe=""), "/requests/export.jsonl"]:
            resp = web.get(path)
            assert resp.status_code == 200, (path, resp.text[:500])
        detail = web.get(f"/requests/{ids['big']}").text
        assert 'href="/users/bob"' in detail and 'href="/sessions/s-1"' in detail
        assert '<section id="replay"' in detail
        assert "a much longer prompt" in detail and "Hello from the mock upstream." in detail
        home = web.get("/").text
        assert "gpt-4o-mini" in home and 'href="/requests?' in home
        assert web.get("/models").text.count("badge local") == 2  # the mock is on loopback
        users = web.get("/users").text
        assert 'href="/users/a%2Fb%20c' in users and "alice" in users
        session = web.get("/sessions/s-1").text
        assert ids["big"] in session and ids["failed"] in session
        assert web.get("/requests/00000000-0000-0000-0000-000000000000").status_code == 404
        assert web.get("/users/nobody").status_code == 404
        assert web.get("/requests/export.xml").status_code == 404


def test_organizations_are_isolated(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    mine = send(gw, "org a secret", "model-a", **{"Helicone-User-Id": "user-a"})
    theirs = send(
        gw,
        "org b secret",
        "model-b",
        key=gw.other.write_key,
        **{"Helicone-User-Id": "user-b", "Helicone-Session-Id": "sess-b"},
    )
    gw.wait_records(1)
    gw.wait_records(1, key=gw.other.read_key)
    add_user(gw, "a@example.com")
    add_user(gw, "b@example.com", "viewer", org_id=gw.other.id)
    with WebClient(gw, "b@example.com") as b:
        assert b.get(f"/requests/{mine}").status_code == 404
        assert b.get(f"/requests/{theirs}").status_code == 200
        assert b.get("/users/user-a").status_code == 404
        for path in PAGES:
            text = b.get(path, range="30d").text
            assert "model-a" not in text and "user-a" not in text, path
        assert row_ids(b.get("/requests").text) == [theirs]
        export = b.get("/requests/export.jsonl").text
        assert mine not in export and theirs in export
        settings = b.get("/settings").text
        assert "a@example.com" not in settings and "b@example.com" in settings
    with WebClient(gw, "a@example.com") as a:
        assert a.get(f"/requests/{theirs}").status_code == 404
        assert a.get("/sessions/sess-b").status_code == 404
        assert row_ids(a.get("/requests").text) == [mine]


def test_filters_sorting_and_pagination(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = _traffic(gw)
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:

        def listed(**params: str) -> list[str]:
            resp = web.get("/requests", **params)
            assert resp.status_code == 200
            return row_ids(resp.text)

        assert len(listed()) == 4
        assert listed(model="gpt-4o") == [ids["big"]]
        assert listed(user="alice") == [ids["plain"]]
        assert listed(user="a/b c") == [ids["tagged"]]
        assert set(listed(session="s-1")) == {ids["big"], ids["failed"]}
        assert listed(errors="1") == [ids["failed"]]
        assert listed(status="5xx") == [ids["failed"]]
        assert len(listed(status="200")) == 3
        assert listed(prop="team=red") == [ids["tagged"]]
        assert listed(q="OTTERS") == [ids["plain"]]  # in the prompt, any case
        assert len(listed(q="mock upstream")) == 3  # in the outputs
        assert listed(q="no such words") == []
        assert listed(provider="anthropic") == []
        assert listed(range="1h") and listed(since="2000-01-01", until="2000-01-02") == []
        assert set(listed(min_latency="0")) == set(ids.values())
        assert listed(max_latency="0.0000001") == []
        bad = web.get("/requests", min_cost="lots", status="teapot")
        assert bad.status_code == 200 and "must be a number" in bad.text
        by_tokens = listed(sort="tokens")
        assert by_tokens[0] == ids["big"] and by_tokens[-1] == ids["failed"]
        assert listed(sort="tokens", order="asc")[0] != ids["big"]
        newest_first = listed()
        assert listed(sort="time", order="asc") == newest_first[::-1]

        seen: list[str] = []
        params: dict[str, str] = {"limit": "3"}
        for _ in range(5):
            page = web.get("/requests", **params).text
            seen += row_ids(page)
            marker = 'rel="next" href="'
            if marker not in page:
                break
            href = page.split(marker, 1)[1].split('"', 1)[0].replace("&amp;", "&")
            params = dict(httpx.URL(href).params)
        assert seen == newest_first
        sorted_pages = row_ids(web.get("/requests", sort="tokens", limit="2").text)
        assert sorted_pages == by_tokens[:2]


def test_live_feed_and_export(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = _traffic(gw)
    add_user(gw, "viewer@example.com", "viewer")
    with WebClient(gw, "viewer@example.com") as web:
        feed = web.get("/requests/live.json", after="0").json()["rows"]
        assert {r["id"] for r in feed} == set(ids.values())
        row = next(r for r in feed if r["id"] == ids["tagged"])
        assert row["user_href"] == "/users/a%2Fb%20c" and row["href"].startswith("/requests/")
        failed = next(r for r in feed if r["id"] == ids["failed"])
        assert (
            failed["cost"] == "unknown" and failed["cost_title"] == "No cost: the request failed."
        )
        assert web.get("/requests/live.json", after="9999999999999").json()["rows"] == []
        only_alice = web.get("/requests/live.json", after="0", user="alice").json()["rows"]
        assert [r["id"] for r in only_alice] == [ids["plain"]]

        resp = web.get("/requests/export.csv", session="s-1")
        assert resp.headers["content-type"].startswith("text/csv")
        assert "attachment" in resp.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(resp.text)))
        assert {r["id"] for r in rows} == {ids["big"], ids["failed"]}
        assert {r["status"] for r in rows} == {"200", "500"}
        resp = web.get("/requests/export.jsonl")
        records = [orjson.loads(line) for line in resp.text.splitlines()]
        assert {r["id"] for r in records} == set(ids.values())
        tagged = next(r for r in records if r["id"] == ids["tagged"])
        assert tagged["properties"] == {"team": "red"} and tagged["user_id"] == "a/b c"
        sorted_export = web.get("/requests/export.jsonl", sort="tokens").text.splitlines()
        assert orjson.loads(sorted_export[0])["id"] == ids["big"]


def test_analytics_api_twins(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    ids = _traffic(gw)
    summary = gw.api("/api/v1/analytics/summary")
    assert summary.status_code == 200, summary.text
    body = summary.json()
    assert body["requests"] == 4 and body["errors"] == 1 and body["active_users"] == 3
    series = gw.api("/api/v1/analytics/timeseries", bucket="1h").json()
    assert series["bucket_ms"] == 3_600_000 and len(series["data"]) == 24
    assert sum(p["requests"] for p in series["data"]) == 4
    auto = gw.api("/api/v1/analytics/timeseries", since="2020-01-01T00:00:00Z").json()
    assert len(auto["data"]) <= 40
    # No window given: the last 24 hours in hourly buckets ending with the current hour, so
    # whole hours come from the rollups.
    default = gw.api("/api/v1/analytics/timeseries").json()
    assert default["bucket_ms"] == 3_600_000 and len(default["data"]) == 24
    assert default["data"][0]["start_ms"] % 3_600_000 == 0
    assert (
        default["data"][-1]["start_ms"]
        <= time.time() * 1000
        < default["data"][-1]["start_ms"] + 3_600_000
    )
    assert sum(p["requests"] for p in default["data"]) == 4
    models = gw.api("/api/v1/analytics/breakdown", dimension="model").json()["data"]
    assert {m["key"]: m["requests"] for m in models} == {"gpt-4o-mini": 3, "gpt-4o": 1}
    users = gw.api("/api/v1/analytics/breakdown", dimension="user_id", limit=1).json()["data"]
    assert len(users) == 1
    other = gw.api("/api/v1/analytics/summary", key=gw.other.read_key).json()
    assert other["requests"] == 0
    assert gw.api("/api/v1/analytics/summary", key=gw.org.write_key).status_code == 403
    assert httpx.get(gw.base_url + "/api/v1/analytics/summary").status_code == 401
    bad = gw.api("/api/v1/analytics/breakdown", dimension="password_hash")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"
    assert gw.api("/api/v1/analytics/timeseries", bucket="1ms").status_code == 400
    assert gw.api("/api/v1/analytics/summary", since="x").status_code == 400
    # the page shows the same numbers as its twin
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:
        assert ids["plain"] in web.get("/requests", kind="llm").text
        home = web.get("/").text
        assert '<span class="value">4</span>' in home and "25%" in home


def test_favicon_is_our_own_icon(gateway: LiveGateway) -> None:
    """Browsers fetch /favicon.ico on every page: a real icon, no login needed, never a 404."""
    resp = httpx.get(gateway.base_url + "/favicon.ico")
    assert resp.status_code == 200 and resp.headers["content-type"] == "image/x-icon"
    icon = resp.content
    assert icon[:4] == b"\x00\x00\x01\x00" and int.from_bytes(icon[4:6], "little") >= 1
    size = int.from_bytes(icon[14:18], "little")
    offset = int.from_bytes(icon[18:22], "little")
    assert icon[offset : offset + 8] == b"\x89PNG\r\n\x1a\n" and offset + size == len(icon)
    assert "max-age" in resp.headers["cache-control"]
    svg = httpx.get(gateway.base_url + "/static/favicon.svg")
    assert svg.status_code == 200 and svg.text.startswith("<svg")
    login = httpx.get(gateway.base_url + "/login").text
    assert '<link rel="icon" href="/static/favicon.svg"' in login


def test_nul_characters_in_dashboard_filters_and_paths(gateway_any: LiveGateway) -> None:
    """A NUL matched every row (SQLite) or failed the page (PostgreSQL): now it finds nothing."""
    gw = gateway_any
    _traffic(gw)
    add_user(gw, "admin@example.com")
    with WebClient(gw, "admin@example.com") as web:
        assert len(row_ids(web.get("/requests").text)) == 4
        for name in ("model", "provider", "user", "session", "kind", "q"):
            for value in ("\x00", "gpt\x00", "%\x00%"):
                resp = web.get("/requests", **{name: value})
                assert resp.status_code == 200, (name, resp.text[:300])
                assert row_ids(resp.text) == [], (name, value)
        assert row_ids(web.get("/requests", prop="team=\x00").text) == []
        assert row_ids(web.get("/requests", prop="te\x00am=red").text) == []
        live = web.get("/requests/live.json", after="0", user="\x00").json()
        assert live["rows"] == []
        export = web.get("/requests/export.csv", model="\x00").text
        assert len(export.strip().splitlines()) == 1  # the header only
        for path in ("/requests/a%00b", "/users/a%00b", "/sessions/a%00b"):
            assert web.get(path).status_code == 404, path


def test_models_page_honours_an_upstreams_declared_locality(
    tmp_path: Path, mock: MockUpstream
) -> None:
    """An upstream's own ``local`` beats the address guess: the demo's cloud simulators (and
    any cloud proxy) listen on 127.0.0.1 yet are cloud; unset, the guess stays."""
    mock.reset()
    upstreams = {
        "openai": {"url": mock.url, "local": False},
        "selfhosted": {"url": "https://llm.example.com/v1", "local": True},
        "guessed": {"url": mock.url},
    }
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    gw = LiveGateway(gateway_settings(tmp_path, db, mock.url, upstreams=upstreams)).start()
    try:
        send(gw, "cloud", "gpt-4o")
        resp = httpx.post(
            f"{gw.base_url}/guessed/{gw.org.write_key}/chat/completions",
            json={"model": "llama3.2", "messages": [{"role": "user", "content": "hi"}]},
            timeout=15,
        )
        assert resp.status_code == 200, resp.text
        gw.wait_records(2)
        add_user(gw, "admin@example.com")
        with WebClient(gw, "admin@example.com") as web:
            page = web.get("/models", range="1h").text
        cells = r'">([^<]+)</a></td>\s*<td><span class="badge (local|cloud)">'
        badges = dict(re.findall(cells, page))
        assert badges == {"gpt-4o": "cloud", "llama3.2": "local"}, badges
    finally:
        gw.stop()
    configs = gw.settings.resolved_upstreams()
    assert is_local("selfhosted", configs) and not is_local("openai", configs)
    assert is_local("guessed", configs) and is_local("ollama", configs)
    assert not is_local("anthropic", configs)
    cloud_ollama = {"ollama": UpstreamConfig(url="http://127.0.0.1:11434", local=False)}
    assert not is_local("ollama", cloud_ollama)  # explicit beats the known-local name too
