"""W3C traceparent: what the gateway accepts, what it sends upstream, what it records."""

from __future__ import annotations

import httpx
import pytest

from conftest import LiveGateway
from heliograph.gateway.traceparent import child, parse
from mock_upstream import MockUpstream

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


def test_a_valid_header_is_parsed() -> None:
    assert parse(VALID) == (TRACE, PARENT, "01")
    assert parse(f"  {VALID} ") == (TRACE, PARENT, "01")
    # A later version may add fields; its first four keep their meaning.
    assert parse(f"01-{TRACE}-{PARENT}-00-extra") == (TRACE, PARENT, "00")


@pytest.mark.parametrize(
    "value",
    [
        "",
        f"00-{TRACE}-{PARENT}",
        f"00-{TRACE.upper()}-{PARENT}-01",  # upper case is invalid
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00_{TRACE}-{PARENT}-01",
        f"00-{TRACE[:-1]}g-{PARENT}-01",
    ],
)
def test_invalid_headers_are_refused(value: str) -> None:
    assert parse(value) is None and child(value) is None


def test_the_gateway_span_is_a_new_child() -> None:
    joined = child(VALID)
    assert joined is not None
    (trace, parent, span, flags), sent = joined
    assert (trace, parent, flags) == (TRACE, PARENT, "01")
    assert len(span) == 16 and span != PARENT and int(span, 16) != 0
    assert sent == f"00-{TRACE}-{span}-01"
    assert child(VALID) != joined  # a new span each time


def test_the_upstream_gets_our_span_and_the_record_joins_the_trace(
    gateway: LiveGateway, mock: MockUpstream
) -> None:
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    url = f"{gateway.openai_url}/chat/completions"
    headers = {"traceparent": VALID, "tracestate": "vendor=x"}
    assert httpx.post(url, json=chat, headers=headers).status_code == 200
    sent = mock.requests[-1].headers
    assert mock.requests[-1].headers["tracestate"] == "vendor=x"
    version, trace, span, flags = sent["traceparent"].split("-")
    assert (version, trace, flags) == ("00", TRACE, "01") and span != PARENT
    bad = "00-xyz-00f067aa0ba902b7-01"
    assert httpx.post(url, json=chat, headers={"traceparent": bad}).status_code == 200
    assert mock.requests[-1].headers["traceparent"] == bad  # not ours to fix: passed on
    assert httpx.post(url, json=chat).status_code == 200
    assert "traceparent" not in mock.requests[-1].headers
    plain, malformed, joined = gateway.wait_records(3)  # newest first
    assert (joined["trace_id"], joined["parent_span_id"], joined["span_id"]) == (
        TRACE,
        PARENT,
        span,
    )
    assert joined["source"] == "gateway" and plain["source"] == "gateway"
    for row in (malformed, plain):
        assert row["trace_id"] is None and row["span_id"] is None
    found = httpx.get(
        f"{gateway.base_url}/api/v1/requests",
        params={"trace_id": TRACE},
        headers={"Authorization": f"Bearer {gateway.org.read_key}"},
    ).json()
    assert [r["id"] for r in found["data"]] == [joined["id"]]
