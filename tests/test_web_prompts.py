"""The Prompts pages over real HTTP on both store dialects: the list (labels, latest version,
last day's traffic, sorting, the empty state, creating a prompt), a prompt's page (timeline
with authors, metrics per version against known records, drill links, the diff), moving a
label in two steps (confirmation field, stale confirmation, viewers refused), editing the
description, deleting with the name typed again, and hostile text shown as text."""

from __future__ import annotations

import html
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from markupsafe import escape

from conftest import LiveGateway, gateway_settings
from heliograph.store.engine import make_engine
from heliograph.store.feedback import set_feedback, set_scores
from mock_upstream import MockUpstream
from models_support import table
from query_support import insert, row
from web_support import WebClient, add_user

ADMIN, VIEWER = "prompt-admin@example.com", "prompt-viewer@example.com"
NOW = int(time.time() * 1000)
HOSTILE = '<script>alert(1)</script> "><img src=x onerror=alert(1)> {{ x }} {{'
V1 = {
    "messages": [
        {"role": "system", "content": "You answer in {{language}}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "model": "gpt-4o-mini",
    "upstream": "openai",
    "params": {"temperature": 0.2, "max_tokens": 50},
    "variables": {"language": "English", "text": None},
    "message": "first cut",
}
V2 = {
    **V1,
    "messages": [
        {"role": "system", "content": "You answer briefly in {{language}}."},
        {"role": "user", "content": "Summarise: {{text}}"},
    ],
    "params": {"temperature": 0.7},
    "message": "shorter answers",
}


class Site:
    def __init__(self, gw: LiveGateway, admin: WebClient, viewer: WebClient) -> None:
        self.gw, self.admin, self.viewer = gw, admin, viewer

    def api(self, method: str, path: str, body: Any = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.gw.org.admin_key}"}
        resp = httpx.request(
            method, self.gw.base_url + path, json=body, headers=headers, timeout=10
        )
        assert resp.status_code < 300, resp.text
        return resp


@pytest.fixture
def site(tmp_path: Path, mock: MockUpstream, db_url: str) -> Iterator[Site]:
    settings = gateway_settings(tmp_path, db_url, mock.url, writer="off")
    gw = LiveGateway(settings).start()
    try:
        add_user(gw, ADMIN)
        add_user(gw, VIEWER, role="viewer")
        with WebClient(gw, ADMIN) as admin, WebClient(gw, VIEWER) as viewer:
            yield Site(gw, admin, viewer)
    finally:
        gw.stop()


def _records(org: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(version: int, **kw: Any) -> str:
        rec = row(org, len(out), created_at=NOW - 600_000 + len(out), **kw)
        rec.update(prompt_name="summary", prompt_version=version)
        out.append(rec)
        return str(rec["id"])

    # v1: 2 calls, 400 and 600 ms, 4_000 nano-USD each, 100 in / 40 out
    for latency in (400.0, 600.0):
        add(
            1,
            latency_ms=latency,
            prompt_tokens=100,
            completion_tokens=40,
            cost_known=True,
            cost_nusd=4_000,
        )
    # v2: 3 calls at 100 ms, 3_000 nano-USD, 80 in / 20 out; one error
    for i in range(3):
        add(
            2,
            latency_ms=100.0,
            prompt_tokens=80,
            completion_tokens=20,
            cost_known=True,
            cost_nusd=3_000,
            state="error" if i == 0 else "ok",
            status=500 if i == 0 else 200,
        )
    return out


def _setup(site: Site, traffic: bool = True) -> list[dict[str, Any]]:
    site.api("POST", "/api/v1/prompts", {"name": "summary", "description": "Summaries"})
    site.api("POST", "/api/v1/prompts/summary/versions", V1)
    site.api("POST", "/api/v1/prompts/summary/versions", V2)
    site.api("PUT", "/api/v1/prompts/summary/labels/production", {"version": 1})
    rows = _records(site.gw.org.id) if traffic else []
    if rows:
        engine = make_engine(site.gw.settings.sqlalchemy_url)
        try:
            insert(engine, rows)
            ids = [r["id"] for r in rows]
            set_feedback(engine, site.gw.org.id, ids[0], True)
            set_feedback(engine, site.gw.org.id, ids[1], False)
            set_feedback(engine, site.gw.org.id, ids[2], True)
            set_scores(engine, site.gw.org.id, ids[0], {"accuracy": 0.8})
            set_scores(engine, site.gw.org.id, ids[3], {"accuracy": 0.6})
        finally:
            engine.dispose()
    return rows


def metrics(page: str) -> dict[str, dict[str, str]]:
    """Metric label -> version -> the cell's figure (without its change)."""
    heads = re.findall(r'<th scope="col" class="num" data-version="(\d+)"', page)
    out: dict[str, dict[str, str]] = {}
    for cells in table(page, "metrics-table"):
        label, values = cells[0], cells[1:]
        out[label] = {v: re.sub(r"\s+[+-]\d+%$", "", c) for v, c in zip(heads, values, strict=True)}
    return out


def test_list_page_empty_state_and_create(site: Site) -> None:
    page = site.admin.get("/prompts")
    assert page.status_code == 200
    assert 'id="prompts-empty"' in page.text and "/api/v1/prompts" in page.text
    assert "{{language}}" in html.unescape(page.text)  # the example, not a rendered template
    assert 'href="/prompts" aria-current="page"' in page.text  # the nav entry
    assert 'action="/prompts"' in page.text
    assert 'action="/prompts"' not in site.viewer.get("/prompts").text

    bad = site.admin.post("/prompts", {"name": "Not A Slug", "description": ""})
    assert bad.status_code == 400 and "lowercase letters" in bad.text
    made = site.admin.post("/prompts", {"name": "greeter", "description": "Says hello"})
    assert made.status_code == 303 and made.headers["location"] == "/prompts/greeter"
    again = site.admin.post("/prompts", {"name": "greeter", "description": ""})
    assert again.status_code == 409 and "already exists" in again.text
    assert site.viewer.post("/prompts", {"name": "nope", "description": ""}).status_code == 403
    assert site.admin.post("/prompts", {"name": "nope"}, csrf="").status_code == 403
    doc = site.api("GET", "/api/v1/prompts").json()["data"]
    assert [p["name"] for p in doc] == ["greeter"]
    assert doc[0]["created_by"].startswith("user:")  # made in the dashboard, by whom


def test_list_page_labels_traffic_and_sorting(site: Site) -> None:
    _setup(site)
    site.api("POST", "/api/v1/prompts", {"name": "aaa-unused", "description": ""})
    page = site.admin.get("/prompts").text
    rows = table(page, "prompts")
    assert re.findall(r'<tr data-prompt="([^"]+)"', page) == ["aaa-unused", "summary"]
    summary = rows[1]
    assert "production → v1" in summary[1] and "staging → none" in summary[1]
    assert summary[2] == "v2" and summary[4] == "5" and summary[5] == "$0.000017"
    assert rows[0][4] == "0"
    by_requests = site.admin.get("/prompts", sort="-requests").text
    assert re.findall(r'<tr data-prompt="([^"]+)"', by_requests) == ["summary", "aaa-unused"]
    link = re.search(r'href="(/requests\?prompt_name=summary[^"]*)"', page)
    assert link
    drilled = site.admin.get(html.unescape(link.group(1)))
    assert drilled.status_code == 200 and len(re.findall(r'<tr data-id="', drilled.text)) == 5


def test_prompt_page_metrics_timeline_and_diff(site: Site) -> None:
    _setup(site)
    page = site.admin.get("/prompts/summary", range="24h")
    assert page.status_code == 200, page.text[:300]
    text = page.text
    assert 'href="/prompts/summary/playground?range=24h"' in text
    got = metrics(text)
    assert got["Requests"] == {"2": "3", "1": "2"}
    assert got["Cost per request"] == {"2": "$0.000003", "1": "$0.000004"}
    assert got["Latency p50"] == {"2": "75 ms", "1": "500 ms"}
    assert got["Error rate"] == {"2": "33%", "1": "0.0%"}
    assert got["Tokens in per request"] == {"2": "80.0", "1": "100.0"}
    assert got["Tokens out per request"] == {"2": "20.0", "1": "40.0"}
    assert got["Feedback (thumbs up)"] == {"2": "100% of 1", "1": "50% of 2"}
    assert got["Score: accuracy"] == {"2": "0.6 of 1", "1": "0.8 of 1"}
    assert "-25%" in text  # v2 costs a quarter less per request than v1
    # each figure drills into the Requests page on the prompt and the version
    links = re.findall(r'<td class="num" data-version="2"><a href="([^"]+)"', text)
    assert links
    query = parse_qs(urlparse(html.unescape(links[0])).query)
    assert query["prompt_name"] == ["summary"] and query["prompt_version"] == ["2"]
    drilled = site.admin.get(html.unescape(links[0]))
    assert len(re.findall(r'<tr data-id="', drilled.text)) == 3
    errors = [u for u in links if "errors=1" in u]
    assert (
        errors
        and len(re.findall(r'<tr data-id="', site.admin.get(html.unescape(errors[0])).text)) == 1
    )

    # the timeline: newest first, with messages, authors (the key's name), labels
    timeline = re.findall(r'<li id="v(\d+)" data-version', text)
    assert timeline == ["2", "1"]
    assert "shorter answers" in text and "first cut" in text
    assert "key a" in text  # the admin key that saved them, by name
    assert "You answer briefly in {{language}}." in html.unescape(text)

    # the default diff: v1 -> v2, word level, messages and parameters
    diff = text[text.index('id="diff"') :]
    assert "<ins> briefly</ins>" in diff
    fields = {r[0]: r for r in table(diff, "diff-fields")}
    assert fields["params.temperature"][1:3] == ["0.2", "0.7"]
    assert fields["params.max_tokens"][1:3] == ["50", "—"]
    assert fields["model"][3] == "same"
    # any two versions by GET parameters (the same version: no changes)
    same = site.admin.get("/prompts/summary", a="2", b="2").text
    assert "no changes" in same
    wrong = site.admin.get("/prompts/summary", a="9").text
    assert "There is no version &#39;9&#39; to compare" in wrong

    assert site.admin.get("/prompts/absent").status_code == 404
    assert site.admin.get("/prompts/Bad%20Name").status_code == 404
    viewer = site.viewer.get("/prompts/summary").text
    assert 'id="move-label"' not in viewer and 'action="/prompts/summary/delete"' not in viewer
    assert "Edit description" not in viewer and "Requests" in viewer


def test_moving_a_label_needs_the_confirmation(site: Site) -> None:
    _setup(site, traffic=False)
    move = {"label": "production", "version": "2"}
    # step one shows the move and changes nothing
    first = site.admin.post("/prompts/summary/labels", move)
    assert first.status_code == 200
    assert 'name="confirm" value="move"' in first.text and 'name="from" value="1"' in first.text
    assert "version 1" in first.text and "version 2" in first.text
    assert site.api("GET", "/api/v1/prompts/summary/labels").json()["history"][0]["to_version"] == 1
    # a viewer cannot, with or without the confirmation
    refused = site.viewer.post("/prompts/summary/labels", {**move, "confirm": "move", "from": "1"})
    assert refused.status_code == 403
    # a stale confirmation (the label moved meanwhile) asks again
    stale = site.admin.post("/prompts/summary/labels", {**move, "confirm": "move", "from": ""})
    assert stale.status_code == 409 and "moved while you were confirming" in stale.text
    done = site.admin.post("/prompts/summary/labels", {**move, "confirm": "move", "from": "1"})
    assert done.status_code == 303
    assert done.headers["location"] == "/prompts/summary?moved=production#labels"
    labels = site.api("GET", "/api/v1/prompts/summary/labels").json()
    latest = labels["history"][0]
    assert (latest["label"], latest["from_version"], latest["to_version"]) == ("production", 1, 2)
    assert latest["by"].startswith("user:")
    page = site.admin.get("/prompts/summary", moved="production").text
    history = table(page, "history-table")
    assert history[0][1:] == ["production", "v1", "v2", ADMIN]
    assert "Moved label <strong>production</strong> to version 2" in page
    # a new label, and bad input
    made = site.admin.post(
        "/prompts/summary/labels",
        {"label": "production", "new_label": "canary", "version": "1", "confirm": "move"},
    )
    assert made.status_code == 303
    assert site.api("GET", "/api/v1/prompts/summary?label=canary").json()["version"] == 1
    for bad in ({"label": "Bad Label", "version": "1"}, {"label": "staging", "version": "9"}):
        assert site.admin.post("/prompts/summary/labels", bad).status_code == 400
    assert site.admin.post("/prompts/absent/labels", move).status_code == 404


def test_description_and_delete(site: Site) -> None:
    _setup(site, traffic=False)
    assert site.viewer.post("/prompts/summary/description", {"description": "x"}).status_code == 403
    saved = site.admin.post("/prompts/summary/description", {"description": "New words"})
    assert saved.status_code == 303
    assert site.api("GET", "/api/v1/prompts").json()["data"][0]["description"] == "New words"
    assert (
        site.admin.post("/prompts/summary/description", {"description": "x" * 2001}).status_code
        == 400
    )

    assert site.viewer.post("/prompts/summary/delete", {"confirm": "summary"}).status_code == 403
    ask = site.admin.post("/prompts/summary/delete", {})
    assert ask.status_code == 200 and 'name="confirm"' in ask.text
    wrong = site.admin.post("/prompts/summary/delete", {"confirm": "summ"})
    assert wrong.status_code == 400 and "Type the prompt" in wrong.text
    assert site.api("GET", "/api/v1/prompts").json()["data"]
    done = site.admin.post("/prompts/summary/delete", {"confirm": "summary"})
    assert done.status_code == 303 and done.headers["location"] == "/prompts?deleted=summary"
    assert site.api("GET", "/api/v1/prompts").json()["data"] == []
    assert site.admin.get("/prompts/summary").status_code == 404


def test_hostile_text_is_shown_as_text(site: Site) -> None:
    site.api("POST", "/api/v1/prompts", {"name": "evil", "description": HOSTILE})
    body = {
        "messages": [{"role": "system", "content": "<script>alert(1)</script> {{v}}"}],
        "variables": {"v": '"><img src=x onerror=alert(1)>'},
        "message": HOSTILE,
        "params": {"stop": ["</code><script>alert(2)</script>"]},
    }
    site.api("POST", "/api/v1/prompts/evil/versions", body)
    site.api("POST", "/api/v1/prompts/evil/versions", {**body, "message": "second"})
    for path in ("/prompts", "/prompts/evil", "/prompts/evil?a=1&b=2"):
        text = site.admin.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, path
    page = site.admin.get("/prompts/evil").text
    assert str(escape('"><img src=x onerror=alert(1)>')) in page  # the default, as text
    assert str(escape("</code><script>alert(2)</script>")) in page  # a parameter, as text


def test_requests_page_shows_prompt_columns(site: Site) -> None:
    _setup(site)
    picker = site.admin.get("/requests").text
    assert 'value="prompt_name"' in picker and 'value="prompt_version"' in picker
    assert 'data-col="prompt_name"' not in picker  # not shown by default
    page = site.admin.get(
        "/requests", cols="time,prompt_name,prompt_version", prompt_name="summary"
    ).text
    assert 'data-col="prompt_name"' in page and 'data-col="prompt_version"' in page
    assert page.count('<a href="/prompts/summary">summary</a>') == 5
    assert page.count(">v2</a>") == 3 and page.count(">v1</a>") == 2
    assert "/requests?prompt_name=summary&amp;prompt_version=2" in page
