"""The Traces pages over real HTTP on both dialects: the list, the waterfall (rows in tree
order, indented, bars placed on the trace's timeline, gateway and ingested calls marked and
linked to their request pages, attributes on expand), the request page's link back, hostile
span text escaped, organizations apart."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from conftest import LiveGateway
from heliograph.store import traces
from trace_support import AGENT, HOSTILE, LLM, LOST, TOOL, TRACE, seed_trace
from web_support import WebClient, add_user, send


def rows(page: str) -> list[dict[str, str]]:
    """The waterfall's rows in page order: their data attributes and cells."""
    out = []
    for attrs, body in re.findall(r"<tr (data-span=[^>]*)>(.*?)</tr>", page, re.S):
        row = {k: html.unescape(v) for k, v in re.findall(r'data-([a-z]+)="([^"]*)"', attrs)}
        indent = re.search(r'class="span-name ind-(\d+)"', body)
        assert indent, body
        row["indent"] = indent.group(1)
        bar = re.search(r'<rect class="(\w+)" x="([\d.]+)" y="1" width="([\d.]+)"', body)
        assert bar, body
        row["bar"], row["x"], row["w"] = bar.groups()
        link = re.search(r'<a class="span-title" href="([^"]+)"', body)
        row["href"] = link.group(1) if link else ""
        row["body"] = body
        out.append(row)
    return out


def test_trace_list_and_waterfall(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    seeded = seed_trace(gw)
    gw.wait_records(3)
    add_user(gw, "t@example.com", "viewer")
    with WebClient(gw, "t@example.com") as web:
        listing = web.get("/traces").text
        assert re.findall(r'<tr data-trace="([0-9a-f]+)"', listing) == [TRACE]
        assert f'href="/traces/{TRACE}' in listing and "agent plan-trip" in listing
        assert 'href="/traces" aria-current="page"' in listing
        opened = web.http.get("/traces", params={"trace_id": f" {TRACE.upper()} "})
        assert opened.status_code == 303 and opened.headers["location"] == f"/traces/{TRACE}"
        wrong = web.get("/traces", trace_id=HOSTILE)
        assert wrong.status_code == 200 and "A trace id is 32 hex digits" in wrong.text
        assert HOSTILE not in wrong.text
        page = web.get(f"/traces/{TRACE}")
        assert page.status_code == 200
        text = page.text
        got = rows(text)
        assert [(r["span"], r["depth"], r["indent"], r["source"]) for r in got] == [
            (AGENT, "0", "0", "otlp"),
            (TOOL, "1", "1", "otlp"),
            (LLM, "2", "2", "otlp"),
            (got[3]["span"], "1", "1", "gateway"),
            (got[4]["span"], "0", "0", "gateway"),
        ]
        agent, tool, llm, gw_call, orphan = got
        # each LLM call opens its request page; spans that are not calls link nowhere
        assert llm["href"] == f"/requests/{seeded.ingested}" and llm["request"] == seeded.ingested
        assert gw_call["href"] == f"/requests/{seeded.gateway}"
        assert orphan["href"] == f"/requests/{seeded.orphan}"
        assert agent["href"] == "" and tool["href"] == ""
        assert "parent span not recorded" in orphan["body"] and LOST in orphan["body"]
        assert "ingested" in llm["body"] and "gateway" in gw_call["body"]
        assert "gpt-4o" in llm["body"] and "150" in llm["body"]  # model and tokens
        # the agent spans the trace from its start; the tool starts 200 ms in
        assert float(agent["x"]) == 0 and float(agent["w"]) > 90
        assert 0 < float(tool["x"]) < 1 and float(gw_call["x"]) > float(tool["x"])
        # attributes open in a <details>; hostile text is escaped everywhere
        assert "<details>" in tool["body"] and "tool.name" in tool["body"]
        assert HOSTILE not in text and html.escape(HOSTILE) in text
        assert "<details>" not in llm["body"]
        # the request page links back to its trace
        detail = web.get(f"/requests/{seeded.gateway}").text
        assert f'id="trace-link" href="/traces/{TRACE}"' in detail
        untraced = send(gw, "no trace here")
        gw.wait_records(4)
        plain = web.get(f"/requests/{untraced}").text
        assert "trace-link" not in plain and "<dt>Trace</dt>" not in plain
        assert web.get(f"/traces/{'1' * 32}").status_code == 404
        assert web.get("/traces/not-a-trace").status_code == 404
    with httpx.Client(base_url=gw.base_url) as anon:
        assert anon.get(f"/traces/{TRACE}").status_code == 303


def test_other_organizations_do_not_see_the_trace(gateway_any: LiveGateway) -> None:
    gw = gateway_any
    seed_trace(gw)
    gw.wait_records(3)
    add_user(gw, "b@example.com", "viewer", org_id=gw.other.id)
    with WebClient(gw, "b@example.com") as web:
        assert web.get(f"/traces/{TRACE}").status_code == 404
        listing = web.get("/traces", range="30d").text
        assert TRACE not in listing and "No traces in this time range" in listing


def test_a_cut_trace_says_so(gateway: LiveGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    seed_trace(gateway)
    gateway.wait_records(3)
    add_user(gateway, "t@example.com")
    with WebClient(gateway, "t@example.com") as web:
        assert 'id="truncated"' not in web.get(f"/traces/{TRACE}").text
        monkeypatch.setattr(traces, "MAX_NODES", 3)
        page = web.get(f"/traces/{TRACE}").text
        assert 'id="truncated"' in page and "more than 3 spans" in page
        assert [r["span"] for r in rows(page)] == [AGENT, TOOL, LLM]
