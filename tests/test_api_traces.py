"""The traces API over real HTTP: the latest traces and one trace's tree, read keys only,
organizations apart, errors in the API's shape."""

from __future__ import annotations

from conftest import LiveGateway
from trace_support import AGENT, HOSTILE, LOST, TOOL, TRACE, seed_trace


def test_trace_tree_and_list(gateway: LiveGateway) -> None:
    gw = gateway
    seeded = seed_trace(gw)
    gw.wait_records(3)
    resp = gw.api(f"/api/v1/traces/{TRACE}")
    assert resp.status_code == 200, resp.text
    tree = resp.json()
    rows = [(n["name"], n["depth"], n["source"], n["parent_span_id"]) for n in tree["nodes"]]
    assert rows == [
        ("agent plan-trip", 0, "otlp", None),
        (f"tool {HOSTILE}", 1, "otlp", AGENT),
        ("chat gpt-4o", 2, "otlp", TOOL),
        ("chat gpt-4o-mini", 1, "gateway", AGENT),  # the gateway's call under the agent
        ("chat gpt-4o-mini", 0, "gateway", LOST),  # its client span was never ingested
    ]
    agent, tool, llm, gw_call, orphan = tree["nodes"]
    assert agent["attributes"] == {"note": HOSTILE} and agent["children"] == 2
    assert llm["request"]["id"] == seeded.ingested and llm["request"]["total_tokens"] == 150
    assert gw_call["request"]["id"] == seeded.gateway and gw_call["request"]["source"] == "gateway"
    assert orphan["request"]["id"] == seeded.orphan and orphan["note"] == "parent span not recorded"
    assert tool["attributes"] == {"tool.name": "search"} and tool["offset_ms"] == 200
    record = gw.record(seeded.gateway)
    assert gw_call["span_id"] == record["span_id"] and record["parent_span_id"] == AGENT
    assert tree["llm_calls"] == 3 and tree["span_count"] == 5 and not tree["truncated"]
    listed = gw.api("/api/v1/traces").json()["data"]
    assert [t["trace_id"] for t in listed] == [TRACE]
    assert listed[0]["root_name"] == "agent plan-trip" and listed[0]["llm_calls"] == 3
    assert listed[0]["span_count"] == 5
    assert gw.api("/api/v1/traces", limit=1, since="2001-01-01").json()["data"][0]["trace_id"]
    assert gw.api("/api/v1/traces", until="2001-01-01").json()["data"] == []


def test_keys_organizations_and_errors(gateway: LiveGateway) -> None:
    gw = gateway
    seed_trace(gw)
    gw.wait_records(2)
    other = gw.api(f"/api/v1/traces/{TRACE}", key=gw.other.read_key)
    assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert gw.api("/api/v1/traces", key=gw.other.read_key).json()["data"] == []
    assert gw.api(f"/api/v1/traces/{TRACE}", key=gw.org.write_key).status_code == 403
    assert gw.api(f"/api/v1/traces/{TRACE}", key="nope").status_code == 401
    for bad in (TRACE.upper(), "xyz", "0" * 32, TRACE + "00"):
        resp = gw.api(f"/api/v1/traces/{bad}")
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_parameter"
    assert gw.api(f"/api/v1/traces/{'1' * 32}").status_code == 404
    assert gw.api("/api/v1/traces", limit=0).status_code == 400
    assert gw.api("/api/v1/traces", limit="x").status_code == 400
    assert gw.api("/api/v1/traces", model="gpt-4o").json()["error"]["code"] == "unknown_parameter"
    assert gw.api("/api/v1/traces", since="yesterday-ish").status_code == 400
