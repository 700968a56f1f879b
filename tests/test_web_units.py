"""Dashboard building blocks without a server: charts, conversations, formatting, URL state."""

from __future__ import annotations

import re

import orjson
from starlette.datastructures import QueryParams

from heliograph.store import filters, selection
from heliograph.store.export import csv_cell
from heliograph.web import chat
from heliograph.web.charts import Series, chart, nice_max
from heliograph.web.format import cost_hint, ms, path, query_url, tokens, usd
from heliograph.web.people import session_tree
from heliograph.web.query import parse_request_query, parse_window
from heliograph.web.request_pages import row_view

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def test_formatting() -> None:
    assert [usd(v) for v in (None, 0, 0.00000123, 0.0042, 0.5, 12.345, 1234.5)] == [
        "—",
        "$0",
        "$0.00000123",
        "$0.0042",
        "$0.5",
        "$12.35",
        "$1,234.50",
    ]
    assert [ms(v) for v in (None, 12.4, 1500, 125_000)] == ["—", "12 ms", "1.50 s", "2m 05s"]
    assert [tokens(v) for v in (None, 950, 12_345, 4_560_000)] == ["—", "950", "12.3k", "4.56M"]
    assert path("users", "javascript:alert(1)") == "/users/javascript%3Aalert%281%29"
    assert path("sessions", "a/../b") == "/sessions/a%2F..%2Fb"
    assert query_url("/requests", {"model": "a&b=c", "user": None}) == "/requests?model=a%26b%3Dc"
    assert query_url("/requests", [("prop", "team=red")]) == "/requests?prop=team%3Dred"
    assert cost_hint({"state": "ok", "kind": "llm", "total_tokens": 5, "model": "x"}).startswith(
        "Unknown: no price"
    )
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_cell(-3) == "-3"
    for text in ("\n=1+1", " =1+1", "\x00=1", "\t=1", "\r=1", "@A1", "+1", "-1"):
        assert csv_cell(text) == "'" + text, text  # every export's CSV, the dashboard's too
    assert csv_cell("plain") == "plain" and csv_cell({"a": "=1"}) == '{"a":"=1"}'


def test_charts_escape_and_scale() -> None:
    assert [nice_max(v) for v in (0, 0.7, 3, 42, 999)] == [1.0, 1.0, 5.0, 50.0, 1000.0]
    svg = str(
        chart(
            "c1",
            HOSTILE,
            [0, 60_000, 120_000],
            60_000,
            [Series(HOSTILE, [1, None, 3]), Series("p95", [2, 2, 2], "s4")],
            fmt=lambda v: f"{v:.0f}",
            kind="line",
            links=["/requests?a=1&b=2", "/x", "/y"],
        )
    )
    assert "<script>" not in svg and "<img" not in svg and "&lt;script&gt;" in svg
    assert 'href="/requests?a=1&amp;b=2"' in svg
    assert svg.count("<title") == 4 and 'role="img"' in svg
    assert "<polyline" in svg and "style=" not in svg
    bars = str(chart("c2", "Bars", [0, 1], 1, [Series("n", [0, 5])], fmt=str))
    assert bars.count('class="bar s1"') == 1


def test_conversations_in_every_format() -> None:
    openai = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://tracker.example/p.png"}},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                    {
                        "type": "image_url",
                        "image_url": {
                            "url": "data:image/png;base64,[omitted by Heliograph: 4096 bytes]"
                        },
                    },
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/svg+xml;base64,PHN2Zz4="},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]
    }
    msgs = chat.conversation(openai)
    assert [m.role for m in msgs] == ["system", "user", "assistant", "tool"]
    kinds = [p.kind for p in msgs[1].parts]
    assert kinds == ["text", "link", "image", "placeholder", "placeholder"]
    assert msgs[1].parts[1].text == "https://tracker.example/p.png"  # shown, never loaded
    assert "4,096 bytes" in msgs[1].parts[3].text
    assert msgs[2].parts[0].name == "weather" and '"city": "Paris"' in msgs[2].parts[0].text
    assert msgs[3].name == "c1" and msgs[3].text == "sunny"
    tools = {"tools": [{"type": "function", "function": {"name": "weather"}}, {"name": "calc"}]}
    assert chat.tool_names(tools) == ["weather", "calc"] and chat.tool_names([]) == []

    anthropic = {
        "system": "sys",
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "name": "f", "input": {"a": 1}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}],
            },
        ],
    }
    roles = [(m.role, m.parts[0].kind) for m in chat.conversation(anthropic)]
    assert roles == [
        ("system", "text"),
        ("user", "text"),
        ("assistant", "tool_call"),
        ("user", "tool_result"),
    ]
    out = chat.output({"role": "assistant", "content": [{"type": "text", "text": "hello"}]})
    assert out[0].text == "hello"

    responses = {"instructions": "be nice", "input": [{"role": "user", "content": "q"}]}
    assert [m.role for m in chat.conversation(responses)] == ["system", "user"]
    answer = chat.output(
        {
            "output": [
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "A"}],
                },
                {"type": "function_call", "name": "g", "arguments": "{}"},
            ]
        }
    )
    assert answer[0].text == "A" and answer[1].parts[0].name == "g"
    assert chat.output({"message": {"role": "assistant", "content": "llama"}})[0].text == "llama"
    assert chat.output({"response": "gen"})[0].text == "gen"
    assert chat.output({"choices": [{"text": "legacy"}]})[0].text == "legacy"
    assert chat.output({"error": {"message": "nope"}})[0].parts[0].kind == "error"
    assert chat.conversation({"prompt": ["a", "b"]})[1].text == "b"
    assert chat.conversation("not json") and chat.output(None) == []
    raw = orjson.dumps({"messages": [{"role": "user", "content": "x " * 200}]})
    assert len(chat.preview(raw)) == chat.PREVIEW_CHARS and chat.preview(b"{oops") == ""


def _conditions(tree: filters.Filter) -> list[filters.Filter]:
    """The top-level conditions of a tree (ANDed)."""
    if isinstance(tree, filters.Branch) and tree.operator == "and":
        return list(tree.children)
    return [tree]


def test_url_state_parsing() -> None:
    rq = parse_request_query(
        QueryParams(
            "model=gpt&status=5xx&errors=1&prop=Team%3Dred&q=hello&min_cost=0.5&max_latency=900"
            "&sort=cost&order=asc&limit=3&since=2026-01-01T00:00"
        )
    )
    f = rq.filter
    # The page's conditions are leaves of the one filter tree (no SQL of their own).
    got = _conditions(f.tree())
    assert filters.Leaf("model", "equals", "gpt") in got and f.text == "hello"
    assert selection.status_class(5) in got and selection.failed() in got
    assert filters.Leaf("properties", "equals", "red", "team") in got
    assert filters.Leaf("cost", "gte", 500_000_000) in got
    assert filters.Leaf("latency", "lte", 900) in got
    assert rq.sort == "cost" and rq.ascending and rq.limit == 3
    assert any(c.field == "created_at" for c in got if isinstance(c, filters.Leaf))
    assert not rq.errors
    pairs = dict(rq.pairs(cursor="c"))
    assert pairs["sort"] == "cost" and pairs["order"] == "asc"
    # ``prop=`` is read as an alias; links write the one spelling.
    assert pairs["property.team"] == "red" and "prop" not in pairs
    one = parse_request_query(QueryParams("user_id=a&session_id=s&property.team=red&feedback=true"))
    old = parse_request_query(QueryParams("user=a&session=s&prop=team%3Dred&feedback=good"))
    assert one.filter.tree() == old.filter.tree() and one.pairs() == old.pairs()
    assert dict(old.pairs()) == {
        "user_id": "a",
        "session_id": "s",
        "property.team": "red",
        "feedback": "true",
    }
    bad = parse_request_query(QueryParams("status=abc&min_cost=-1&since=never&sort=evil&limit=0"))
    assert len(bad.errors) == 4 and bad.sort == "time"
    window = parse_window(QueryParams("range=7d"))
    assert window.bucket_ms == 6 * 3_600_000 and len(window.starts) == 28
    custom = parse_window(QueryParams("range=custom&since=2026-01-01T00:00&until=2026-01-02T00:00"))
    assert custom.key == "custom" and custom.bucket_ms == 1_800_000 and len(custom.starts) == 48
    broken = parse_window(QueryParams("range=custom&since=2026-01-02&until=2026-01-01"))
    assert broken.key == "24h" and broken.error


def test_row_view_and_session_tree() -> None:
    row = {
        "id": "r1",
        "created_at": "2026-01-01T00:00:00.000Z",
        "status": 200,
        "state": "ok",
        "provider": "p",
        "model": HOSTILE,
        "endpoint": "/x",
        "user_id": "javascript:alert(1)",
        "session_id": None,
        "total_tokens": 5,
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "tokens_estimated": True,
        "cost_known": True,
        "cost_usd": 0.001,
        "latency_ms": 20.0,
        "ttft_ms": None,
    }
    view = row_view(row, "preview")
    assert view["user_href"] == "/users/javascript%3Aalert%281%29"
    assert re.fullmatch(r"/requests\?model=[^<>\"]+", view["model_href"])
    assert view["tokens"] == "~5" and view["cost"] == "$0.001" and view["session_href"] == ""
    rows = [
        {"id": "b", "created_ms": 2000, "latency_ms": 500.0, "session_path": "/plan/step"},
        {"id": "a", "created_ms": 1000, "latency_ms": 100.0, "session_path": "/plan"},
        {"id": "c", "created_ms": 1500, "latency_ms": None, "session_path": None},
    ]
    tree = session_tree(rows)
    assert [r["id"] for r in tree] == ["c", "a", "b"]
    assert [r["depth"] for r in tree] == [0, 0, 1] and tree[2]["at_ms"] == 1000
    assert all(0 <= r["offset"] <= 100 and r["width"] > 0 for r in tree)
