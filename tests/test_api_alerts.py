"""The alerts API over real HTTP on both dialects: scopes, org isolation, 400s naming the
field and the allowed values, secrets never shown back, PATCH keeping secrets, the test
button against a real receiver, and the history listing an evaluated transition."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from conftest import LiveGateway, free_port
from heliograph.alerts import evaluate, signing
from heliograph.store.engine import make_engine
from query_support import insert, row

SECRET = "signing-secret-0123456789"
SLACK_URL = "https://hooks.slack.com/services/T000/B000/abcdefghijklmnopqrstuvwxyz"


def call(gw: LiveGateway, method: str, path: str, key: str, body: Any = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"}
    return httpx.request(method, gw.base_url + path, json=body, headers=headers, timeout=15)


class _Hook(BaseHTTPRequestHandler):
    got: list[tuple[str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append((self.headers.get(signing.HEADER, ""), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
    got: list[tuple[str, bytes]] = []
    handler = type("Hook", (_Hook,), {"got": got})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook", got
    finally:
        server.shutdown()
        server.server_close()


def test_channels_and_rules(gateway_any: LiveGateway, hook: tuple[str, list[Any]]) -> None:
    gw, (hook_url, got) = gateway_any, hook
    admin, read, write = gw.org.admin_key, gw.org.read_key, gw.org.write_key
    channel = {"name": "ops", "kind": "webhook", "url": hook_url, "secret": SECRET}
    for key in (read, write):
        assert call(gw, "POST", "/api/v1/alerts/channels", key, channel).status_code == 403
    made = call(gw, "POST", "/api/v1/alerts/channels", admin, channel)
    assert made.status_code == 201, made.text
    ops = made.json()
    assert ops["secrets"] == {"secret": "…6789"} and SECRET not in made.text
    slack = call(
        gw,
        "POST",
        "/api/v1/alerts/channels",
        admin,
        {"name": "s", "kind": "slack", "url": SLACK_URL},
    )
    assert slack.status_code == 201 and SLACK_URL not in slack.text
    assert slack.json()["secrets"]["url"] == "https://hooks.slack.com/…wxyz"
    listed = call(gw, "GET", "/api/v1/alerts/channels", read)
    assert SECRET not in listed.text and SLACK_URL not in listed.text
    assert call(gw, "POST", "/api/v1/alerts/channels", admin, channel).status_code == 409
    bad = call(gw, "POST", "/api/v1/alerts/channels", admin, {"name": "x", "kind": "pager"})
    assert bad.status_code == 400
    assert bad.json()["error"]["message"] == "kind: must be one of webhook, slack, discord, email"
    # PATCH keeps the secret it was not given; the test button signs with it
    cpath = f"/api/v1/alerts/channels/{ops['id']}"
    assert call(gw, "PATCH", cpath, admin, {"timeout_s": 5}).json()["secrets"] == {
        "secret": "…6789"
    }
    tested = call(gw, "POST", cpath + "/test", admin)
    assert tested.json() == {"ok": True, "error": None}
    [(header, body)] = got
    assert signing.verify(SECRET, body, header, int(time.time())) and b'"alert.test"' in body
    assert call(gw, "POST", cpath + "/test", read).status_code == 403
    down = call(
        gw,
        "POST",
        "/api/v1/alerts/channels",
        admin,
        {"name": "down", "kind": "discord", "url": f"http://127.0.0.1:{free_port()}/x"},
    )
    result = call(gw, "POST", f"/api/v1/alerts/channels/{down.json()['id']}/test", admin).json()
    assert result["ok"] is False and "could not reach" in result["error"]
    # rules
    rule = {
        "name": "errors",
        "metric": "error_rate",
        "window": "5m",
        "comparison": ">",
        "threshold": 0.5,
        "min_requests": 2,
        "channels": ["ops"],
        "filter": {"model": "gpt-4o"},
    }
    made = call(gw, "POST", "/api/v1/alerts/rules", admin, rule)
    assert made.status_code == 201, made.text
    errors = made.json()
    assert (
        errors["channels"] == [ops["id"]] and errors["window"] == "5m" and errors["state"] == "ok"
    )
    cases = [
        ("metric", "errors", "metric: must be one of cost_usd, requests, error_rate"),
        ("comparison", "=", "comparison: must be one of >, >=, <, <="),
        ("window", "forever", 'window: must be seconds or a duration like "5m"'),
        ("channels", ["pager"], "channels: no channel 'pager' here (channels: down, ops, s)"),
        ("filter", {"modle": "x"}, "filter.modle: not a filter parameter"),
    ]
    for field, value, message in cases:
        resp = call(gw, "POST", "/api/v1/alerts/rules", admin, {**rule, "name": "n", field: value})
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["message"].startswith(message), resp.text
    rpath = f"/api/v1/alerts/rules/{errors['id']}"
    patched = call(gw, "PATCH", rpath, admin, {"threshold": 0.25, "cooldown": "15m"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["threshold"], patched.json()["cooldown_s"]) == (0.25, 900)
    assert patched.json()["metric"] == "error_rate"  # kept
    assert call(gw, "PATCH", rpath, admin, {"comparison": "!"}).status_code == 400
    other = gw.other
    assert call(gw, "GET", rpath, other.read_key).status_code == 404
    assert call(gw, "PATCH", rpath, other.admin_key, {"enabled": False}).status_code == 404
    assert call(gw, "GET", "/api/v1/alerts/rules", other.read_key).json()["data"] == []
    assert call(gw, "GET", cpath, other.read_key).status_code == 404
    # an evaluation fires it: the history lists the event with its pending delivery
    now = int(time.time() * 1000)
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        insert(
            engine,
            [row(gw.org.id, i, created_at=now - 60_000 + i, state="error") for i in range(3)],
        )
        assert evaluate.evaluate(engine, gw.settings.spool_dir, now, "http://x").transitions == 1
    finally:
        engine.dispose()
    events = call(gw, "GET", "/api/v1/alerts/events", read).json()["data"]
    assert [(e["kind"], e["rule_name"], e["value"], e["request_count"]) for e in events] == [
        ("firing", "errors", 1.0, 3)
    ]
    assert [d["channel"] for d in events[0]["deliveries"]] == ["ops"]
    assert call(gw, "GET", "/api/v1/alerts/rules", read).json()["data"][0]["state"] == "firing"
    assert call(gw, "GET", "/api/v1/alerts/events", other.read_key).json()["data"] == []
    assert call(gw, "GET", "/api/v1/alerts/events?limit=0", read).status_code == 400
    # deleting the channel takes it off the rule
    assert call(gw, "DELETE", cpath, admin).status_code == 204
    assert call(gw, "GET", rpath, read).json()["channels"] == []
    assert call(gw, "DELETE", rpath, admin).status_code == 204
    assert call(gw, "GET", rpath, read).status_code == 404
