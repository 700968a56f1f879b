"""E2E: record webhooks through `heliograph serve`, configured as the README says (environment
variables, `[[webhooks]]` in config.toml, endpoints created through the API).

Real aiohttp receivers run in the test: one answers 500 to its first attempts, one stalls past
the sender's timeout before it recovers, one is healthy (it takes the config.toml endpoint and
a filtered one). Traffic goes through the gateway with the real `openai` package to the mock
upstream; the whole server is SIGKILLed while deliveries are pending (some in flight), started
again on the same home, and sent more traffic. Every record then reached every receiver whose
filter it matches, at least once; every request's signatures verify with the endpoint's
secret; each payload's record is the record the read API answers; duplicates carry the same
idempotency key; and nothing else arrived (the filter held). Nothing in this test calls the
job process's tick itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, serving

from conftest import create_pg_database, free_port
from heliograph.alerts import signing
from mock_upstream import MockUpstream
from serve_process import ServeProcess
from webhook_receiver import Hit, Receiver

pytestmark = pytest.mark.slow

CONFIG_SECRET = "config-secret-0123456789abcdef"
TIMEOUT_S = 1.5
WAIT_S = 90.0
BODY_KEYS = ("request_body", "response_body")


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


def env(upstream: MockUpstream) -> dict[str, str]:
    return {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_WEBHOOK_TIMEOUT_S": str(TIMEOUT_S),
        "HELIOGRAPH_WEBHOOK_CONCURRENCY": "2",
    }


def config_toml(url: str) -> str:
    return f"""\
[[webhooks]]
name = "from-config"
url = "{url}"
secret = "{CONFIG_SECRET}"
include_bodies = true
"""


def api(
    serve: Heliograph, method: str, path: str, body: Any = None, key: str = ""
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key or serve.admin_key}"}
    return httpx.request(method, serve.base_url + path, json=body, headers=headers, timeout=15)


def create(serve: Heliograph, body: dict[str, Any]) -> dict[str, Any]:
    made = api(serve, "POST", "/api/v1/webhooks", body)
    assert made.status_code == 201, made.text
    doc: dict[str, Any] = made.json()
    return doc


def traffic(serve: Heliograph, models: list[str]) -> dict[str, str]:
    """One chat completion per model through the gateway; record id -> model."""
    client = openai.OpenAI(
        base_url=serve.url("v1"), api_key="sk-test-client-0123456789", max_retries=0
    )
    ids = {}
    for model in models:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
        ids[raw.headers["heliograph-id"]] = model
    return ids


def deliveries(serve: Heliograph, endpoint_id: str) -> list[dict[str, Any]]:
    got = api(serve, "GET", f"/api/v1/webhooks/{endpoint_id}/deliveries?limit=200")
    assert got.status_code == 200, got.text
    data: list[dict[str, Any]] = got.json()["data"]
    return data


def endpoint(serve: Heliograph, endpoint_id: str) -> dict[str, Any]:
    got = api(serve, "GET", f"/api/v1/webhooks/{endpoint_id}")
    assert got.status_code == 200, got.text
    doc: dict[str, Any] = got.json()
    return doc


def check_hit(hit: Hit, secret: str, stored: dict[str, Any], with_bodies: bool) -> None:
    """Signatures verify with the secret; the payload is the stored record, as the API has it."""
    assert signing.verify(secret, hit.body, hit.headers["Heliograph-Signature"], int(time.time()))
    assert hit.headers["helicone-signature"] == signing.body_hmac(secret, hit.body)
    assert hit.headers["Heliograph-Delivery-Id"] == hit.key
    doc = hit.json()
    assert doc["event"] == "record.created"
    assert doc["id"] == doc["idempotency_key"] == doc["request_id"] == hit.key == stored["id"]
    expected = dict(stored)
    if not with_bodies:
        for k in BODY_KEYS:
            expected.pop(k)
    else:
        assert doc["request_body"] == stored["request_body"]
        assert doc["response_body"] == stored["response_body"]
    assert doc["record"] == expected
    assert doc["model"] == stored["model"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_env(request: pytest.FixtureRequest, upstream: MockUpstream) -> Iterator[dict[str, str]]:
    """The server's environment, with its store on SQLite (the default) or PostgreSQL."""
    if request.param == "sqlite":
        yield env(upstream)
        return
    url, drop = create_pg_database(request.getfixturevalue("pg_admin"))
    try:
        yield {**env(upstream), "HELIOGRAPH_DATABASE_URL": url}
    finally:
        drop()


def test_every_record_reaches_every_receiver_across_a_sigkill(
    tmp_path: Path, store_env: dict[str, str]
) -> None:
    flaky = Receiver(fail_first=6).start()
    stalling = Receiver(stall_first=3, stall_s=TIMEOUT_S + 2.5).start()
    healthy = Receiver().start()
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(config_toml(healthy.url("config")))
    server = Heliograph(home, free_port(), env=store_env).start()
    try:
        listed = api(server, "GET", "/api/v1/webhooks").json()["data"]
        assert [(e["name"], e["source"]) for e in listed] == [("from-config", "config")]
        config_id = listed[0]["id"]
        made = {
            "flaky": create(server, {"name": "flaky", "url": flaky.url(), "include_bodies": True}),
            "stalling": create(server, {"name": "stalling", "url": stalling.url()}),
            "mini": create(
                server,
                {"name": "mini", "url": healthy.url("mini"), "filter": {"model": "gpt-4o-mini"}},
            ),
        }
        secrets = {name: m["secret"] for name, m in made.items()}
        time.sleep(3)  # the writer re-reads which organizations have webhooks every 2 s
        first = traffic(server, ["gpt-4o", "gpt-4o-mini", "gpt-4o", "gpt-4o-mini", "gpt-4o"])
        # kill once the stalling receiver has cost an attempt its timeout, while the flaky
        # and stalling receivers still owe deliveries (some of them in flight)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            stalled = endpoint(server, made["stalling"]["id"])["last_error"] or ""
            if "timed out" in stalled and len(flaky.all_hits()) >= 3:
                break
            time.sleep(0.05)
        assert "timed out" in stalled
        pending = [d for d in deliveries(server, made["flaky"]["id"]) if d["status"] == "pending"]
        assert pending, "the kill must land while deliveries are pending"
        server.kill()  # SIGKILL: gateway workers, writer and job process at once
        assert stalling.taken() == {}  # nothing was taken by the stalling receiver yet
        ServeProcess.start(server)  # same home, same port, same keys
        second = traffic(server, ["gpt-4o-mini", "gpt-4o", "gpt-4o-mini"])
        ids = {**first, **second}
        minis = {rid for rid, model in ids.items() if model == "gpt-4o-mini"}
        wanted = [
            (flaky, None, set(ids)),
            (stalling, None, set(ids)),
            (healthy, "config", set(ids)),
            (healthy, "mini", minis),
        ]
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if all(set(r.taken(p)) >= want for r, p, want in wanted):
                break
            time.sleep(0.25)
        for receiver, path, want in wanted:
            assert set(receiver.taken(path)) == want, (path, server.output()[-3000:])
        stored = {rid: server.record(rid) for rid in ids}
        for name, receiver, path, with_bodies in (
            ("flaky", flaky, None, True),
            ("stalling", stalling, None, False),
            ("from-config", healthy, "config", True),
            ("mini", healthy, "mini", False),
        ):
            secret = CONFIG_SECRET if name == "from-config" else secrets[name]
            for key, hits in receiver.taken(path).items():
                for hit in hits:  # duplicates (at-least-once) carry the same key and record
                    check_hit(hit, secret, stored[key], with_bodies)
        for hit in flaky.all_hits() + stalling.all_hits() + healthy.all_hits():
            text = hit.body.decode()
            assert server.write_key not in text and server.admin_key not in text
            assert "sk-test-client" not in text
            assert all(s not in text for s in [*secrets.values(), CONFIG_SECRET])
        # the failures were retried, and the log says so
        assert sum(h.answered == 500 for h in flaky.all_hits()) == 6
        assert sum(h.answered is None for h in stalling.all_hits()) == 3
        log = deliveries(server, made["flaky"]["id"])
        assert {d["status"] for d in log} == {"delivered"} and len(log) == len(ids)
        assert max(d["attempts"] for d in log) >= 2
        stalled_log = deliveries(server, made["stalling"]["id"])
        assert {d["status"] for d in stalled_log} == {"delivered"}
        assert max(d["attempts"] for d in stalled_log) >= 2
        assert len(deliveries(server, config_id)) == len(ids)
        endpoints = {e["name"]: e for e in api(server, "GET", "/api/v1/webhooks").json()["data"]}
        assert "HTTP 500" in endpoints["flaky"]["last_error"]
        assert endpoints["flaky"]["last_success_at"] is not None
        assert "timed out" in endpoints["stalling"]["last_error"]
        assert endpoints["mini"]["last_error"] is None
    finally:
        server.stop()
        for r in (flaky, stalling, healthy):
            r.stop()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("webhooks-home")
    (home / "config.toml").write_text(config_toml("http://127.0.0.1:9/config"))
    with serving(home, env(upstream)) as server:
        yield server


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "url": "ftp://example.test/hook"}, "url"),
        ({"name": "x", "url": "not a url"}, "url"),
        ({"name": "x", "url": "http://user:pw@example.test/"}, "url"),
        ({"name": "x"}, "url"),
        ({"url": "https://example.test/"}, "name"),
        (
            {"name": "x", "url": "https://example.test/", "filter": {"modle": "gpt-4o"}},
            "filter.modle",
        ),
        (
            {"name": "x", "url": "https://example.test/", "filter": {"min_cost": "cheap"}},
            "filter.min_cost",
        ),
        ({"name": "x", "url": "https://example.test/", "secret": "short"}, "secret"),
        ({"name": "x", "url": "https://example.test/", "enabled": "yes"}, "enabled"),
        ({"name": "x", "url": "https://example.test/", "colour": "red"}, "colour"),
    ],
)
def test_bad_endpoints_are_400_naming_the_field(
    serve: Heliograph, body: dict[str, Any], field: str
) -> None:
    got = api(serve, "POST", "/api/v1/webhooks", body)
    assert got.status_code == 400, got.text
    assert got.json()["error"]["message"].startswith(f"{field}:"), got.text
    names = [e["name"] for e in api(serve, "GET", "/api/v1/webhooks").json()["data"]]
    assert "x" not in names


def test_secret_is_shown_once_and_writes_need_admin(serve: Heliograph) -> None:
    made = create(serve, {"name": "once", "url": "https://example.test/once"})
    secret = made["secret"]
    assert secret.startswith("whsec_") and len(secret) > 30
    assert made["secret_hint"] == "whsec_…" + secret[-4:]
    given = create(
        serve, {"name": "given", "url": "https://example.test/g", "secret": "my-own-secret-1234567"}
    )
    assert given["secret"] == "my-own-secret-1234567"
    for path in ("/api/v1/webhooks", f"/api/v1/webhooks/{made['id']}"):
        text = api(serve, "GET", path).text
        assert secret not in text and "my-own-secret-1234567" not in text and '"secret"' not in text
    patched = api(serve, "PATCH", f"/api/v1/webhooks/{made['id']}", {"enabled": False})
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert secret not in patched.text
    config = [
        e for e in api(serve, "GET", "/api/v1/webhooks").json()["data"] if e["source"] == "config"
    ]
    assert config[0]["secret_hint"] == "…" + CONFIG_SECRET[-4:]
    assert (
        api(serve, "PATCH", f"/api/v1/webhooks/{config[0]['id']}", {"enabled": False}).status_code
        == 409
    )
    assert api(serve, "DELETE", f"/api/v1/webhooks/{config[0]['id']}").status_code == 409
    assert (
        api(
            serve, "POST", "/api/v1/webhooks", {"name": "once", "url": "https://e.test/"}
        ).status_code
        == 409
    )
    read_key = api(serve, "POST", "/api/v1/keys", {"name": "reader", "scope": "read"})
    assert read_key.status_code == 201, read_key.text
    key = read_key.json()["key"]
    assert api(serve, "GET", "/api/v1/webhooks", key=key).status_code == 200
    denied = api(
        serve, "POST", "/api/v1/webhooks", {"name": "r", "url": "https://e.test/"}, key=key
    )
    assert denied.status_code == 403
    assert api(serve, "DELETE", f"/api/v1/webhooks/{made['id']}").status_code == 204
    assert api(serve, "GET", f"/api/v1/webhooks/{made['id']}").status_code == 404
    assert "/api/v1/webhooks" in httpx.get(serve.base_url + "/openapi.json").json()["paths"]
