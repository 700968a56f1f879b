"""`heliograph demo`: a week of history through the real spool and writer, realistic clients,
and a banner a new user can act on.

The week is made in process (the simulator and an app served by uvicorn, as the demo runs
them) and read back through the API; `heliograph demo` and `heliograph serve` themselves run
as subprocesses at the end.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import orjson
import pytest

from conftest import LiveGateway, free_port
from heliograph.auth.keys import create_key
from heliograph.capture.frames import END_KEYS, START_KEYS
from heliograph.capture.spool import KIND_END, KIND_START, SpoolDir, spool_dirs
from heliograph.cli.demo import history_start
from heliograph.config import Settings
from heliograph.demo.history import Gateway, activity, write_history
from heliograph.demo.models import DEGRADING, WEEK_S, Conditions
from heliograph.demo.simulator import Simulator, demo_upstreams, start_simulator
from heliograph.demo.traffic import (
    OPENWEBUI_USERS,
    Call,
    coding_session,
    openwebui_chat,
    send,
    support_chat,
)
from heliograph.store import orgs
from heliograph.store.engine import make_engine, migrate
from serve_process import ServeProcess

DAY_MS = 86_400_000
LOCAL = ("llama3.2", "qwen3:8b")


class SimulatorThread:
    """The simulator served on its own event loop in a thread, as `heliograph demo` runs it."""

    def __init__(self, simulator: Simulator) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started = start_simulator("127.0.0.1", 0, simulator)
        self.runner, port = asyncio.run_coroutine_threadsafe(started, self.loop).result(10)
        self.url = f"http://127.0.0.1:{port}"

    def run(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def demo_settings(root: Path, simulator_url: str, **extra: Any) -> Settings:
    options: dict[str, Any] = {"writer": "embedded", "writer_poll_interval": 0.02, **extra}
    return Settings(
        home=root / "home",
        database_url=f"sqlite:///{root / 'demo.db'}",
        demo=True,
        upstreams=demo_upstreams(simulator_url),
        **options,
    )


@dataclass
class DemoOrg:
    id: str
    key_id: str
    write_key: str
    read_key: str


def demo_org(settings: Settings) -> DemoOrg:
    """An organization with a write key (and its id, as the history frames carry it) and a
    read key, made before the app starts so its key cache knows them."""
    engine = make_engine(settings.sqlalchemy_url)
    try:
        migrate(engine)
        org_id = orgs.create_org(engine, "demo")
        key_id, write_key = create_key(engine, org_id=org_id, name="demo", scope="write")
        _, read_key = create_key(engine, org_id=org_id, name="read", scope="read")
    finally:
        engine.dispose()
    return DemoOrg(org_id, key_id, write_key, read_key)


@dataclass
class Week:
    gateway: LiveGateway
    org: DemoOrg
    since_ms: int
    until_ms: int
    spooled: int
    rows: list[dict[str, Any]]

    def api(self, path: str, **params: Any) -> dict[str, Any]:
        resp = self.gateway.api(path, self.org.read_key, **params)
        assert resp.status_code == 200, resp.text
        data: dict[str, Any] = resp.json()
        return data

    def detail(self, rid: str) -> dict[str, Any]:
        return self.api(f"/api/v1/requests/{rid}")


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Week]:
    """A week of demo history spooled and stored by the app's own writer, all of it read back."""
    root = tmp_path_factory.mktemp("week")
    sim = SimulatorThread(Simulator(random.Random(5)))
    settings = demo_settings(root, sim.url)
    org = demo_org(settings)
    gateway = LiveGateway(settings).start()
    try:
        now = time.time()
        simulator = Simulator(random.Random(7), Conditions(now - WEEK_S))
        history = Gateway(settings, org.id, org.key_id, org.write_key)
        spooled, directory = write_history(
            settings, simulator, history, now - WEEK_S, now, random.Random(11)
        )
        deadline = time.monotonic() + 60
        while directory.exists():  # the writer removes a dead spool directory once drained
            assert time.monotonic() < deadline, "the writer did not drain the history"
            time.sleep(0.1)
        rows: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = gateway.api("/api/v1/requests", org.read_key, **params).json()
            rows += page["data"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        yield Week(gateway, org, int((now - WEEK_S) * 1000), int(now * 1000), spooled, rows)
    finally:
        gateway.stop()
        sim.stop()


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


# -- the week, as the writer stored it ---------------------------------------------------------


def test_every_spooled_request_is_stored_and_the_week_is_covered(week: Week) -> None:
    assert 1500 <= week.spooled <= 6000, week.spooled
    assert len(week.rows) == week.spooled
    times = sorted(ms(r["created_at"]) for r in week.rows)
    assert times[-1] - times[0] >= 6 * DAY_MS
    days = {t // DAY_MS for t in times}
    assert len(days) >= 7, "a day of the week without traffic"


def test_cloud_models_are_priced_and_local_ones_free(week: Week) -> None:
    ok = [r for r in week.rows if r["state"] == "ok"]
    cloud = [r for r in ok if r["provider"] in ("openai", "anthropic")]
    local = [r for r in ok if r["provider"] == "ollama"]
    assert {r["model"] for r in cloud} >= {"gpt-4o-mini", "gpt-4o", "claude-sonnet-4-6"}
    assert {r["model"] for r in local} == set(LOCAL)
    for row in cloud:
        assert row["cost_known"] and row["cost_usd"] > 0, row
        assert row["cost_source"] == "genai-prices", row
    for row in local:
        assert row["cost_known"] and row["cost_usd"] == 0 and row["cost_source"] == "local", row
        assert row["output_tokens_per_s"] and row["load_ms"] is not None, row


def test_local_models_start_cold_after_a_pause(week: Week) -> None:
    cold = [r for r in week.rows if r["cold_start"]]
    assert cold and {r["model"] for r in cold} <= set(LOCAL)
    for row in cold:
        assert row["load_ms"] > 1000, row
        waited = row["ttft_ms"] if row["stream"] else row["latency_ms"]
        assert waited >= row["load_ms"], row
    warm = [r for r in week.rows if r["provider"] == "ollama" and r["load_ms"] is not None]
    assert len(cold) < len(warm) / 2, "most local requests should find the model loaded"


def test_the_daily_rhythm_is_busier_in_working_hours(week: Week) -> None:
    by_activity: dict[bool, int] = defaultdict(int)
    for row in week.rows:
        if row["user_id"] != "nightly-digest":
            by_activity[activity(ms(row["created_at"]) / 1000) >= 0.75] += 1
    hours_busy = sum(activity(t) >= 0.75 for t in range(0, 7 * 86_400, 3600))
    per_busy_hour = by_activity[True] / hours_busy
    per_quiet_hour = by_activity[False] / (7 * 24 - hours_busy)
    assert per_busy_hour > 3 * per_quiet_hour, (per_busy_hour, per_quiet_hour)


def test_a_few_requests_fail_like_providers_fail(week: Week) -> None:
    errors = [r for r in week.rows if r["state"] == "error"]
    assert 0 < len(errors) < len(week.rows) * 0.08
    assert {r["status"] for r in errors} <= {429, 500, 529}
    assert {r["provider"] for r in errors} == {"openai", "anthropic", "ollama"}


def test_sessions_are_one_users_growing_conversation(week: Week) -> None:
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in week.rows:
        if row["session_id"]:
            sessions[row["session_id"]].append(row)
    for rows in sessions.values():
        assert len({r["user_id"] for r in rows}) == 1, rows[0]["session_id"]
    long = [rows for rows in sessions.values() if len(rows) >= 3]
    assert len(long) > 100
    chat = next(
        rows
        for rows in long
        if rows[0]["properties"].get("app") == "code-assistant"
        and all(r["state"] == "ok" for r in rows)
    )
    chat.sort(key=lambda r: r["created_at"])
    sizes = []
    previous_answer = None
    for row in chat:
        detail = week.detail(row["id"])
        messages = detail["request_body"]["messages"]
        sizes.append(len(messages))
        if previous_answer is not None:  # the last answer is carried in the next turn
            assert messages[-2] == {"role": "assistant", "content": previous_answer}
        previous_answer = _anthropic_text(detail["response_body"])
    assert sizes == list(range(1, 2 * len(chat), 2)), sizes
    assert len(set(r["session_path"] for r in chat)) == len(chat)


def _anthropic_text(body: Any) -> str:
    if isinstance(body, dict):
        return "".join(b.get("text", "") for b in body.get("content", []))
    out = []
    for line in str(body).splitlines():
        if line.startswith("data: "):
            event = orjson.loads(line[6:])
            if event.get("type") == "content_block_delta":
                out.append(event["delta"]["text"])
    return "".join(out)


def test_tool_calls_and_their_results(week: Week) -> None:
    """The support bot's model calls a tool; the next request carries the tool's result."""
    tool_turns = [r for r in week.rows if (r["session_path"] or "").endswith("/tool-result")]
    assert len(tool_turns) > 20
    checked = 0
    for turn in tool_turns[:40]:
        if turn["state"] != "ok":
            continue
        messages = week.detail(turn["id"])["request_body"]["messages"]
        call, result = messages[-2], messages[-1]
        assert call["role"] == "assistant" and call["tool_calls"], call
        assert result["role"] == "tool" and result["tool_call_id"] == call["tool_calls"][0]["id"]
        assert call["tool_calls"][0]["function"]["name"] in ("search_orders", "get_refund_policy")
        checked += 1
        if checked == 3:
            break
    assert checked == 3
    turn = next(r for r in tool_turns if r["state"] == "ok")
    before = [  # the request whose answer was the tool call (a failed try may sit between)
        r
        for r in week.rows
        if r["session_id"] == turn["session_id"]
        and r["created_at"] < turn["created_at"]
        and r["state"] == "ok"
        and not r["session_path"].endswith("/tool-result")
    ]
    asked = max(before, key=lambda r: r["created_at"])
    body = week.detail(asked["id"])["response_body"]
    assert "tool_calls" in (body if isinstance(body, str) else orjson.dumps(body).decode())


def test_open_webui_users_chats_and_tasks(week: Week) -> None:
    rows = [r for r in week.rows if r["user_name"]]
    names = {r["user_name"] for r in rows}
    assert names == {p.name for p in OPENWEBUI_USERS}
    for row in rows:
        person = next(p for p in OPENWEBUI_USERS if p.name == row["user_name"])
        assert (row["user_id"], row["user_email"], row["user_role"]) == (
            person.id,
            person.email,
            person.role,
        )
    tasks = {r["task"] for r in rows}
    assert {"title_generation", "tags_generation", "follow_up_generation", None} <= tasks
    assert {r["provider"] for r in rows} == {"openai", "ollama"}
    titles = [r for r in rows if r["task"] == "title_generation" and r["state"] == "ok"]
    assert titles and all(r["session_name"] for r in titles), "a chat without its title"
    assert {r["provider"] for r in titles} == {"openai", "ollama"}


def test_the_degrading_model_slows_down_day_by_day(week: Week) -> None:
    """Read as the trend charts read it: the analytics API's daily points."""
    points = week.api(
        "/api/v1/analytics/timeseries",
        model=DEGRADING,
        since=week.since_ms,
        until=week.until_ms,
        bucket="1d",
    )["data"]
    assert len(points) == 7
    speeds = [p["p50_output_tokens_per_s"] for p in points]
    assert all(s is not None for s in speeds), points
    for earlier, later in itertools.pairwise(speeds):
        assert later <= earlier * 1.05, speeds
    assert speeds[-1] < speeds[0] * 0.7, speeds
    others = week.api(
        "/api/v1/analytics/timeseries",
        model="llama3.2",
        since=week.since_ms,
        until=week.until_ms,
        bucket="1d",
    )["data"]
    steady = [p["p50_output_tokens_per_s"] for p in others if p["p50_output_tokens_per_s"]]
    assert max(steady) < min(steady) * 1.3, steady


def test_a_store_that_holds_the_week_needs_only_what_came_after(week: Week) -> None:
    """Run again on the same store, the demo fills in only the time since its newest record."""
    engine = make_engine(week.gateway.settings.sqlalchemy_url)
    try:
        now = time.time()
        since = history_start(engine, now)
        newest = max(ms(r["created_at"]) for r in week.rows) / 1000
        assert newest < since <= newest + 1.5
    finally:
        engine.dispose()
    empty = make_engine(f"sqlite:///{week.gateway.settings.home / 'empty.db'}")
    try:
        migrate(empty)
        assert history_start(empty, now) == now - WEEK_S
    finally:
        empty.dispose()


# -- the history's frames are the gateway's frames ---------------------------------------------


def test_history_frames_are_what_the_gateway_spools(tmp_path: Path) -> None:
    """The same calls sent live through the gateway and written as history give the same
    frames but for ids, times and timings (the writer builds records from nothing else)."""
    warm = Conditions(time.time() - WEEK_S, {"llama3.2": float("inf")})
    sim = SimulatorThread(Simulator(random.Random(3), warm, errors={}))
    settings = demo_settings(tmp_path, sim.url, writer="off")
    org = demo_org(settings)
    key = org.write_key
    gateway = LiveGateway(settings).start()
    try:
        rng = random.Random(1)
        sessions = [
            openwebui_chat(rng, model="gpt-4o"),
            openwebui_chat(rng, model="llama3.2"),
            support_chat(rng),
            coding_session(rng),
        ]
        calls = [step for step in (next(s) for s in sessions) if isinstance(step, Call)]
        assert len(calls) == len(sessions)

        async def live() -> None:
            async with aiohttp.ClientSession() as http:
                await asyncio.gather(*(send(http, gateway.base_url, key, c) for c in calls))

        sim.run(live())
        by_client = {_client(start): (start, end) for start, end in _frames(settings.spool_dir)}
        assert len(by_client) == len(calls)
        history = Gateway(settings, org.id, org.key_id, key)
        simulator = Simulator(random.Random(3), errors={})
        for call in calls:
            start, _, path, sent = history.start(call, "id", time.time())
            live_start, live_end = by_client[_client(start)]
            reply = simulator.reply("POST", path, sent, time.time())
            end = orjson.loads(orjson.dumps(history.end("id", reply, reply.body, 1.0)))
            start = orjson.loads(orjson.dumps(start))
            assert set(start) == set(live_start) == START_KEYS
            for name in START_KEYS - {"id", "ts", "key", "h"}:
                assert start[name] == live_start[name], name
            assert live_start["key"] == org.key_id == start["key"]
            assert sorted(start["h"]) == sorted(live_start["h"])
            assert set(end) == set(live_end) <= END_KEYS
            for name in ("st", "state", "err", "ct"):
                assert end[name] == live_end[name], name
            names = sorted(n.lower() for n, _ in end["rh"])
            assert names == sorted(n.lower() for n, _ in live_end["rh"])
    finally:
        gateway.stop()
        sim.stop()


def _frames(spool_root: Path) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The (start, end) frame pairs in the live gateway's spool."""
    starts: dict[str, dict[str, Any]] = {}
    pairs = []
    for directory in spool_dirs(spool_root):
        for frame in SpoolDir(directory.path).read_frames(final=False, limit=1000):
            header = orjson.loads(frame.header)
            if frame.kind == KIND_START:
                starts[header["id"]] = header
            elif frame.kind == KIND_END:
                pairs.append((starts[header["id"]], header))
    return pairs


def _client(start: dict[str, Any]) -> tuple[str, str]:
    """Which demo client sent a request: its upstream and user agent."""
    return start["up"], dict(start["h"])["user-agent"]


# -- what a new user sees first --------------------------------------------------------------


def _read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> list[str]:
    lines: list[str] = []
    done = threading.Event()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if marker in line:
                done.set()
                return

    threading.Thread(target=pump, daemon=True).start()
    if not done.wait(timeout):
        raise AssertionError(f"{marker!r} not printed:\n" + "\n".join(lines))
    return lines


def _stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


def test_demo_banner_write_key_and_base_urls_work(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "heliograph", "demo", "--port", str(port), "--home", str(tmp_path)],
        env={k: v for k, v in os.environ.items() if not k.startswith("HELIOGRAPH_")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        text = "\n".join(_read_until(proc, "Sending demo traffic", 60))
        assert "SIMULATED" in text and "log in as admin@localhost / " in text
        key = re.search(r"Write key: +(hg_\S+)", text).group(1)  # type: ignore[union-attr]
        for name, path in (
            ("OpenAI", "/v1/"),
            ("Anthropic", "/anthropic/"),
            ("Ollama", "/ollama/"),
        ):
            assert re.search(rf"{name} base URL: +{re.escape(base + path + key)}$", text, re.M)
        chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(4):  # the simulated provider fails now and then, as providers do
            resp = httpx.post(f"{base}/v1/{key}/chat/completions", json=chat, timeout=30)
            assert resp.status_code in (200, 429, 500), resp.text
            if resp.status_code == 200:
                break
        assert resp.status_code == 200, resp.text
        assert resp.json()["choices"][0]["message"]["content"]
        assert not any(line.startswith("INFO") for line in text.splitlines()), text
    finally:
        _stop(proc)


def test_serve_first_start_banner_is_not_buried_in_migration_logs(tmp_path: Path) -> None:
    serve = ServeProcess(tmp_path, free_port()).start()
    try:
        lines = list(serve.lines)
        write_key = serve.key("write key")
    finally:
        serve.stop()
    text = "\n".join(lines)
    assert "Running upgrade" not in text and "alembic" not in text.lower(), text
    first = next(i for i, line in enumerate(lines) if line.startswith("First start"))
    assert all("Creating a new store" in line for line in lines[:first]), lines[:first]
    base = f"http://127.0.0.1:{serve.port}"
    for url in (f"{base}/v1/{write_key}", f"{base}/anthropic/{write_key}"):
        assert any(line.endswith(url) for line in lines), (url, text)
    assert any(line.endswith(f"{base}/ollama/{write_key}") for line in lines), text
    assert re.search(r"one-time password .*: \S+", text)


def test_demo_keeps_its_data_in_heliograph_home(tmp_path: Path) -> None:
    """HELIOGRAPH_HOME says where data lives for the demo as for every other command."""
    home = tmp_path / "home"
    env = _clean_env(tmp_path, HELIOGRAPH_HOME=str(home))
    proc, text = _start_demo(env, free_port())
    try:
        assert (home / "heliograph.db").exists(), text
        assert f"Data directory: {home}\n" in text
        assert f"Creating a new store at {home / 'heliograph.db'}" in text
        assert list((tmp_path / "tmp").iterdir()) == [], "the demo made a temporary home"
        keys = subprocess.run(  # the demo's store, read by another command as users would
            [sys.executable, "-m", "heliograph", "keys", "list"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert keys.returncode == 0 and "demo traffic" in keys.stdout, keys.stderr
    finally:
        _stop(proc)


def test_demo_without_a_home_uses_a_new_temporary_directory(tmp_path: Path) -> None:
    proc, text = _start_demo(_clean_env(tmp_path), free_port())
    try:
        made = [p for p in (tmp_path / "tmp").iterdir() if p.name.startswith("heliograph-demo-")]
        assert len(made) == 1, made
        assert (made[0] / "heliograph.db").exists()
        assert f"Data directory: {made[0]}  (a new temporary directory" in text
        assert not (tmp_path / "user" / ".heliograph").exists(), "the demo used ~/.heliograph"
    finally:
        _stop(proc)


def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No HELIOGRAPH_* from the tester's shell, a HOME and a TMPDIR of the test's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOGRAPH_")}
    (tmp_path / "user").mkdir()
    (tmp_path / "tmp").mkdir()
    return {**env, "HOME": str(tmp_path / "user"), "TMPDIR": str(tmp_path / "tmp"), **extra}


def _start_demo(env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], str]:
    """Start `heliograph demo --port PORT`, wait for /health; (process, its output so far)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "heliograph", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = _read_until(proc, "Data directory", 60)  # the banner comes before the server
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "\n".join(lines)
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, "\n".join(lines) + "\n"
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _stop(proc)
    raise AssertionError("the demo did not become healthy:\n" + "\n".join(lines))


def test_demo_help_says_where_its_data_goes() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "heliograph", "demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = " ".join(shown.stdout.split())
    assert "--home" in text and "HELIOGRAPH_HOME" in text and "temporary directory" in text


def test_demo_upstreams_say_which_are_cloud_and_which_local() -> None:
    """The simulator listens on 127.0.0.1; its OpenAI and Anthropic stand for cloud APIs."""
    settings = Settings(upstreams=demo_upstreams("http://127.0.0.1:9"))
    upstreams = settings.resolved_upstreams()
    assert upstreams["openai"].local is False
    assert upstreams["anthropic"].local is False
    assert upstreams["ollama"].local is True
    assert upstreams["ollama"].protocol == "ollama"
    assert upstreams["anthropic"].url == "http://127.0.0.1:9/anthropic"
