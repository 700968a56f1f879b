"""The alerts' job-process tick on both dialects, with a real aiohttp receiver: a firing
rule is evaluated and delivered once; a second tick, and a second job process (a replica)
evaluating at once, send nothing more. And the config.toml sync: created, updated, deleted
by name, never touching rules made through the API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from sqlalchemy import Engine

from conftest import free_port, make_org
from heliograph.alerts import definitions
from heliograph.alerts.jobs import alerts_tick, sync_config
from heliograph.config import Settings
from heliograph.jobs.runner import JobContext
from heliograph.store import alerts
from query_support import insert, row


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    got: list[dict[str, Any]] = []

    async def hook(request: web.Request) -> web.Response:
        got.append(orjson.loads(await request.read()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/hook", got
    finally:
        await runner.cleanup()


async def close(context: JobContext) -> None:
    for closer in context.extras.get("closers", []):
        await closer()


async def test_tick_delivers_once(
    engine: Engine, tmp_path: Path, receiver: tuple[str, list[dict[str, Any]]]
) -> None:
    url, got = receiver
    org = make_org(engine, "tick").id
    doc = {"name": "hook", "kind": "webhook", "url": url}
    alerts.create_channel(engine, org, definitions.check_channel(doc))
    rule = {
        "name": "errors",
        "metric": "error_rate",
        "window": "5m",
        "comparison": ">",
        "threshold": 0.5,
        "channels": ["hook"],
    }
    alerts.create_rule(
        engine, org, definitions.check_rule(rule, alerts.channel_refs(engine, org)), None
    )
    now = int(time.time() * 1000)
    insert(engine, [row(org, i, created_at=now - 10_000 + i, state="error") for i in range(2)])
    settings = Settings(home=tmp_path, alerts_interval_s=60)
    one = JobContext(settings, engine, "host:1:a")
    two = JobContext(settings, engine, "host:2:b")
    try:
        await alerts_tick(one)
        assert [(g["type"], g["rule"]["name"], g["value"]) for g in got] == [
            ("alert.firing", "errors", 1.0)
        ]
        await alerts_tick(one)  # within the interval: no evaluation, nothing pending
        await alerts_tick(two)  # another job process evaluates at once: no new transition
        assert len(got) == 1
        [event] = alerts.list_events(engine, org)
        assert event["kind"] == "firing"
    finally:
        await close(one)
        await close(two)


def test_config_sync(engine: Engine, tmp_path: Path) -> None:
    org = make_org(engine, "default").id
    rule = {
        "name": "slow",
        "metric": "p95_latency_ms",
        "window": "15m",
        "comparison": ">",
        "threshold": 2000,
        "channels": ["team-slack"],
    }
    slack = {
        "name": "team-slack",
        "kind": "slack",
        "url": "https://hooks.slack.com/services/T/B/secretsecret",
    }
    mine = definitions.check_rule({**rule, "name": "mine", "channels": []}, {})
    alerts.create_rule(engine, org, mine, "key:x")
    settings = Settings(home=tmp_path, alerts={"channels": [slack], "rules": [rule]})
    assert sync_config(engine, settings)
    rules = {r["name"]: r for r in alerts.list_rules(engine, org)}
    [channel] = alerts.list_channels(engine, org)
    assert (channel["source"], channel["secrets"]["url"]) == ("config", slack["url"])
    assert rules["slow"]["source"] == "config" and rules["slow"]["channels"] == [channel["id"]]
    assert rules["mine"]["source"] == "api"
    changed = Settings(
        home=tmp_path, alerts={"channels": [slack], "rules": [{**rule, "threshold": 5000}]}
    )
    assert sync_config(engine, changed)
    again = {r["name"]: r for r in alerts.list_rules(engine, org)}
    assert again["slow"]["threshold"] == 5000 and again["slow"]["id"] == rules["slow"]["id"]
    assert sync_config(engine, Settings(home=tmp_path))  # gone from the file: deleted
    assert [r["name"] for r in alerts.list_rules(engine, org)] == ["mine"]
    assert alerts.list_channels(engine, org) == []
