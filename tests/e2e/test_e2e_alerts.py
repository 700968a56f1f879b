"""E2E: alerts against `heliograph serve`, configured only by `config.toml` and environment
variables as the README's Alerts section says. A webhook channel (its signing secret read
from an environment variable) and an error-rate rule come from `[[alerts.channels]]` and
`[[alerts.rules]]`; HELIOGRAPH_ALERTS_INTERVAL_S shortens the evaluation period. Real traffic
goes through the gateway with the `openai` package to the mock upstream, which answers 500s;
the job process that serve starts evaluates the rule, and the firing notification reaches a
real aiohttp receiver, signed: the receiver refuses the first attempt (503), the outbox sends
it again after its backoff, and after further evaluations it has still arrived once. The
history in the API has the event, its value and the delivery; the secret is never shown.
Nothing in this test evaluates or sends itself."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
from aiohttp import web
from e2e_harness import Heliograph, serving

from conftest import free_port
from heliograph.alerts import signing
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

SECRET = "e2e-alert-signing-secret-0123456789"
WAIT_S = 45.0


class Receiver:
    """An aiohttp server in its own thread that records every POST; the first gets a 503."""

    def __init__(self) -> None:
        self.port = free_port()
        self.got: list[tuple[dict[str, str], bytes, float]] = []
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _hook(self, request: web.Request) -> web.Response:
        self.got.append((dict(request.headers), await request.read(), time.monotonic()))
        return web.Response(status=503 if len(self.got) == 1 else 200)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> Receiver:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as box:
        yield box


@pytest.fixture(scope="module")
def serve(
    tmp_path_factory: pytest.TempPathFactory, receiver: Receiver
) -> Iterator[tuple[Heliograph, MockUpstream]]:
    home: Path = tmp_path_factory.mktemp("alerts-home")
    (home / "config.toml").write_text(
        f"""\
[[alerts.channels]]
name = "ops-hook"
kind = "webhook"
url = "{receiver.url}"
secret = "${{ALERT_HOOK_SECRET}}"

[[alerts.rules]]
name = "gpt-4o-mini errors"
metric = "error_rate"
filter = {{ model = "gpt-4o-mini" }}
window = "5m"
comparison = ">"
threshold = 0.5
min_requests = 3
cooldown = "30m"
channels = ["ops-hook"]
"""
    )
    with MockUpstream() as upstream:
        env = {
            "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
            "HELIOGRAPH_ALERTS_INTERVAL_S": "1",
            "ALERT_HOOK_SECRET": SECRET,
        }
        with serving(home, env) as server:
            yield server, upstream


def api(server: Heliograph, path: str) -> Any:
    got = server.admin_request("GET", path)
    assert got.status_code == 200, got.text
    return got.json()


def test_errors_fire_one_signed_notification(
    serve: tuple[Heliograph, MockUpstream], receiver: Receiver
) -> None:
    server, _ = serve
    rules = api(server, "/api/v1/alerts/rules")["data"]
    assert [(r["name"], r["source"], r["state"]) for r in rules] == [
        ("gpt-4o-mini errors", "config", "ok")
    ]
    channels = api(server, "/api/v1/alerts/channels")["data"]
    assert channels[0]["secrets"] == {"secret": "…6789"}
    with openai.OpenAI(base_url=server.url("v1"), api_key="sk-test", max_retries=0) as client:
        for _ in range(4):
            with pytest.raises(openai.InternalServerError):
                client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": "hi"}],
                    extra_headers={"x-mock-status": "500"},
                )
        client.chat.completions.create(  # another model's success is outside the filter
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
        )
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and len(receiver.got) < 2:
        time.sleep(0.2)
    assert len(receiver.got) == 2, server.output()[-3000:]
    (h1, _, t1), (h2, b2, t2) = receiver.got
    assert h1["Heliograph-Delivery"] == h2["Heliograph-Delivery"]  # one notification, retried
    assert t2 - t1 >= 4.0  # after the outbox's backoff (5 s)
    assert signing.verify(SECRET, b2, h2[signing.HEADER], int(time.time()))
    doc = orjson.loads(b2)
    assert doc["type"] == "alert.firing" and doc["rule"]["name"] == "gpt-4o-mini errors"
    assert doc["value"] == 1.0 and doc["request_count"] == 4
    assert doc["rule"]["filter"] == {"model": "gpt-4o-mini"}
    # several more evaluations (one a second): still one notification, one event
    time.sleep(4)
    assert len(receiver.got) == 2
    events = api(server, "/api/v1/alerts/events")["data"]
    assert [(e["kind"], e["value"], e["request_count"], e["notified"]) for e in events] == [
        ("firing", 1.0, 4, True)
    ]
    [delivery] = events[0]["deliveries"]
    assert (delivery["channel"], delivery["status"], delivery["attempts"]) == (
        "ops-hook",
        "sent",
        2,
    )
    [rule] = api(server, "/api/v1/alerts/rules")["data"]
    assert rule["state"] == "firing" and rule["last_value"] == 1.0
    listed = server.admin_request("GET", "/api/v1/alerts/channels").text
    assert SECRET not in listed and SECRET not in server.output()
