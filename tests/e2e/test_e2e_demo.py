"""`heliograph demo` as a user runs it: HELIOGRAPH_HOME set, a free `--port`, nothing else.

It starts with a week of simulated history, stored by the writer within a bounded wait: cloud
models (OpenAI, Anthropic) priced from the catalogue and local ones (Ollama) at 0, cold starts,
tool calls, one user's growing sessions, Open WebUI's users and tasks, a model that slows down
day by day. Live traffic follows; the printed login, write key and base URLs work with the
real client packages.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from e2e_harness import clean_environment, dashboard_login, heliograph_command, model_badges

from browser_support import chromium_browser, screenshot, sign_in
from conftest import free_port

pytestmark = pytest.mark.slow

WAIT = 60.0
HISTORY_WAIT = 120.0  # the writer stores the week within seconds; a busy machine is slower
CLOUD = ("openai", "anthropic")
DAY_MS = 86_400_000


@dataclass
class Demo:
    proc: subprocess.Popen[str]
    base_url: str
    home: Path
    user_home: Path
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "\n".join(self.lines)

    def printed(self, pattern: str) -> re.Match[str]:
        found = re.search(pattern, self.output())
        assert found, f"{pattern!r} not in the demo's output:\n{self.output()}"
        return found

    @property
    def data_dir(self) -> Path:
        return Path(self.printed(r"Data directory: (\S+)").group(1))

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Another `heliograph` command on the demo's data directory, as a user would run it."""
        env = {**clean_environment(), "HOME": str(self.user_home)}
        env["HELIOGRAPH_HOME"] = str(self.data_dir)
        return subprocess.run(
            [*heliograph_command(), *args], env=env, capture_output=True, text=True, timeout=60
        )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("demo")
    home, user_home = root / "home", root / "user"
    home.mkdir()
    user_home.mkdir()
    port = free_port()
    env = {**clean_environment(), "HELIOGRAPH_HOME": str(home), "HOME": str(user_home)}
    proc = subprocess.Popen(
        [*heliograph_command(), "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    demo = Demo(proc, f"http://127.0.0.1:{port}", home, user_home)

    def pump() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                demo.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + WAIT
        while not any("Sending demo traffic" in line for line in demo.lines):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the demo did not start:\n" + demo.output())
            time.sleep(0.1)
        yield demo
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        reader.join(10)
        # a data directory the demo made for itself elsewhere (not HELIOGRAPH_HOME) is ours
        found = re.search(r"Data directory: (\S+)", demo.output())
        made = Path(found.group(1)) if found else None
        if (
            made
            and made != home
            and made.name.startswith("heliograph-demo-")
            and made.parent == Path(tempfile.gettempdir())
        ):
            shutil.rmtree(made, ignore_errors=True)


@pytest.fixture(scope="module")
def read_key(demo: Demo) -> str:
    """A read key made with `heliograph keys create` on the demo's data directory."""
    made = demo.cli("keys", "create", "--name", "e2e", "--scope", "read")
    assert made.returncode == 0, made.stdout + made.stderr
    key = made.stdout.strip().splitlines()[-1].split()[-1]
    assert key.startswith("hg_"), made.stdout
    return key


@pytest.fixture(scope="module")
def week(demo: Demo, read_key: str) -> list[dict[str, Any]]:
    """Every record of the demo's first week, once the demo says its history is stored."""
    deadline = time.monotonic() + HISTORY_WAIT
    while not any("History stored" in line for line in demo.lines):
        assert time.monotonic() < deadline, "no history stored:\n" + demo.output()
        assert demo.proc.poll() is None, demo.output()
        time.sleep(0.2)
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while not rows or cursor:
        page = api(
            demo, read_key, "/api/v1/requests", limit=1000, **({"cursor": cursor} if cursor else {})
        )
        rows += page["data"]
        cursor = page["next_cursor"]
        if not page["data"]:
            break
    return rows


def api(demo: Demo, key: str, path: str, **params: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while True:
        resp = httpx.get(
            demo.base_url + path,
            params=params,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        if resp.status_code != 401 or time.monotonic() > deadline:  # a key made a moment ago
            break
        time.sleep(0.3)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def records(demo: Demo, key: str, **params: Any) -> list[dict[str, Any]]:
    resp = httpx.get(
        demo.base_url + "/api/v1/requests",
        params={"limit": 1000, **params},
        headers={"Authorization": f"Bearer {key}"},
        timeout=15,
    )
    if resp.status_code == 401:  # the key cache may not have seen the new key yet
        return []
    assert resp.status_code == 200, resp.text
    rows: list[dict[str, Any]] = resp.json()["data"]
    return rows


def test_the_demo_keeps_its_data_in_heliograph_home(demo: Demo) -> None:
    """HELIOGRAPH_HOME says where Heliograph keeps its data, for the demo as for serve."""
    assert demo.data_dir == demo.home, (
        f"the demo put its data in {demo.data_dir}, not in HELIOGRAPH_HOME={demo.home}"
    )
    assert (demo.home / "heliograph.db").exists()


def test_the_demo_records_cloud_and_local_models(demo: Demo, read_key: str) -> None:
    """Simulated cloud models are priced from the catalogue; local ones cost 0 and carry
    Ollama's own speed and load-time figures; a cold local model shows up."""
    deadline = time.monotonic() + WAIT
    ok: dict[str, list[dict[str, Any]]] = {}
    cold: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        rows = records(demo, read_key, kind="llm", state="ok")
        ok = {p: [r for r in rows if r["provider"] == p] for p in (*CLOUD, "ollama")}
        cold = [r for r in ok["ollama"] if r["cold_start"]]
        if all(ok.values()) and cold:
            break
        time.sleep(0.5)
    assert all(ok.values()), {p: len(v) for p, v in ok.items()}
    for provider in CLOUD:
        for row in ok[provider]:
            assert row["protocol"] == provider, row
            assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0, row
            assert row["cost_known"] is True and row["cost_source"] == "genai-prices", row
            assert row["cost_usd"] > 0, row
    for row in ok["ollama"]:
        assert row["protocol"] in ("ollama", "openai"), row
        assert row["cost_known"] is True and row["cost_usd"] == 0, row
        assert row["cost_source"] == "local", row
        assert row["completion_tokens"] > 0, row
        if row["protocol"] == "ollama":
            assert row["output_tokens_per_s"] and row["load_ms"] is not None, row
    assert cold, "no cold local model within the wait"
    first = cold[0]
    # a stream's first token, or a whole answer, comes after the model loaded
    waited = first["ttft_ms"] if first["stream"] else first["latency_ms"]
    assert first["load_ms"] > 1000 and waited >= first["load_ms"], first


def test_the_demo_dashboard_with_the_printed_login(demo: Demo) -> None:
    """The printed admin login works; cloud models are badged cloud, local ones local."""
    email, password = demo.printed(r"log in as (\S+) / (\S+)").groups()
    with dashboard_login(demo.base_url, email, password) as web:
        badges = model_badges(web, {"gpt-4o-mini", "claude-sonnet-4-6", "llama3.2"}, WAIT)
        requests_page = web.get("/requests", params={"range": "1h"}).text
        for path in ("/", "/requests", "/models", "/users", "/sessions", "/settings"):
            page = web.get(path, params={"range": "7d"})
            assert page.status_code == 200, path
            assert "simulated" in page.text.lower(), f"{path} is not labelled as a demo"
        users_page = web.get("/users", params={"range": "7d"}).text
    assert "Ada Lovelace" in users_page and "cust-" in users_page, "demo users not listed"
    for provider in (*CLOUD, "ollama"):
        assert f">{provider}<" in requests_page, f"{provider} not on the Requests page"
    assert {"gpt-4o-mini", "claude-sonnet-4-6", "llama3.2"} <= set(badges), badges
    wrong = {
        model: where
        for model, where in badges.items()
        if where != ("local" if model in ("llama3.2", "qwen3:8b") else "cloud")
    }
    assert not wrong, f"simulated models badged wrongly on /models: {wrong}"


def test_the_banner_gives_a_write_key_and_base_urls_for_the_sdks(demo: Demo, read_key: str) -> None:
    """What the banner prints is enough to send requests with the real client packages."""
    import anthropic
    import ollama
    import openai

    key = demo.printed(r"Write key: +(hg_\S+)").group(1)
    urls = {
        name: demo.printed(rf"{name} base URL: +(\S+)").group(1)
        for name in ("OpenAI", "Anthropic", "Ollama")
    }
    assert urls == {
        "OpenAI": f"{demo.base_url}/v1/{key}",
        "Anthropic": f"{demo.base_url}/anthropic/{key}",
        "Ollama": f"{demo.base_url}/ollama/{key}",
    }
    with openai.OpenAI(base_url=urls["OpenAI"], api_key="sk-any") as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "Hello from the e2e test"}]
        )
        assert raw.parse().choices[0].message.content
        rid = raw.headers["heliograph-id"]
    with anthropic.Anthropic(base_url=urls["Anthropic"], api_key="sk-ant-any") as claude:
        message = claude.messages.create(
            model="claude-sonnet-4-6", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
        )
        assert message.content[0].text  # type: ignore[union-attr]
    with ollama.Client(host=urls["Ollama"]) as local:
        for attempt in range(4):  # the SDK does not retry the simulated failures; users would
            try:
                answer = local.chat(model="llama3.2", messages=[{"role": "user", "content": "Hi"}])
                break
            except ollama.ResponseError as exc:
                assert exc.status_code == 500 and attempt < 3, exc
        assert answer.message.content
    deadline = time.monotonic() + WAIT
    found: dict[str, Any] | None = None
    while found is None and time.monotonic() < deadline:
        resp = httpx.get(
            f"{demo.base_url}/api/v1/requests/{rid}",
            headers={"Authorization": f"Bearer {read_key}"},
            timeout=15,
        )
        found = resp.json() if resp.status_code == 200 else None
        time.sleep(0.3)
    assert found is not None, "the SDK's request was not stored"
    assert found["model"] == "gpt-4o-mini" and found["cost_usd"] > 0, found


def test_a_week_of_history_is_stored_through_the_writer(week: list[dict[str, Any]]) -> None:
    times = sorted(ms(r["created_at"]) for r in week)
    assert len(week) >= 1500, len(week)
    assert times[-1] - times[0] >= 6 * DAY_MS, "the history does not span six days"
    ok = [r for r in week if r["state"] == "ok" and r["kind"] == "llm"]
    cloud = [r for r in ok if r["provider"] in CLOUD]
    local = [r for r in ok if r["provider"] == "ollama"]
    assert {r["provider"] for r in cloud} == set(CLOUD) and local
    assert all(r["cost_usd"] > 0 and r["cost_source"] == "genai-prices" for r in cloud)
    assert all(r["cost_usd"] == 0 and r["cost_source"] == "local" for r in local)
    cold = [r for r in local if r["cold_start"]]
    assert cold and all(r["load_ms"] > 1000 for r in cold)
    errors = [r for r in week if r["state"] == "error"]
    assert 0 < len(errors) < len(week) * 0.08


def test_sessions_tools_and_open_webui_users(
    demo: Demo, read_key: str, week: list[dict[str, Any]]
) -> None:
    sessions: dict[str, list[dict[str, Any]]] = {}
    for row in week:
        if row["session_id"]:
            sessions.setdefault(row["session_id"], []).append(row)
    long = [rows for rows in sessions.values() if len(rows) >= 3]
    assert long and all(len({r["user_id"] for r in rows}) == 1 for rows in sessions.values())
    tool_turn = next(
        r for r in week if r["state"] == "ok" and (r["session_path"] or "").endswith("/tool-result")
    )
    detail = api(demo, read_key, f"/api/v1/requests/{tool_turn['id']}")
    call, result = detail["request_body"]["messages"][-2:]
    assert call["tool_calls"] and result["role"] == "tool"
    assert result["tool_call_id"] == call["tool_calls"][0]["id"]
    named = {r["user_name"] for r in week if r["user_name"]}
    assert len(named) >= 2, named
    tasks = {r["task"] for r in week if r["user_name"]}
    assert {"title_generation", "tags_generation"} <= tasks


def test_the_degrading_model_trend(demo: Demo, read_key: str, week: list[dict[str, Any]]) -> None:
    """The daily p50 output speed of the model that slows down falls over the week, as the
    analytics API (and the trend charts) read it."""
    until = max(ms(r["created_at"]) for r in week)
    points = api(
        demo,
        read_key,
        "/api/v1/analytics/timeseries",
        model="qwen3:8b",
        since=until - 7 * DAY_MS,
        until=until,
        bucket="1d",
    )["data"]
    speeds = [p["p50_output_tokens_per_s"] for p in points if p["p50_output_tokens_per_s"]]
    assert len(speeds) >= 6, points
    assert speeds[-1] < speeds[0] * 0.75, speeds
    assert all(b <= a * 1.1 for a, b in itertools.pairwise(speeds)), speeds


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium_browser()


def test_a_tour_of_every_page_in_a_browser(
    demo: Demo, week: list[dict[str, Any]], browser: Any
) -> None:
    """Every dashboard page of the running demo in Chromium, with a screenshot of each: no
    script error, the range that shows the week, the range and timezone kept from page to
    page, sortable tables, the degrading model's page, the comparison and a transcript."""
    email, password = demo.printed(r"log in as (\S+) / (\S+)").groups()
    context = browser.new_context(base_url=demo.base_url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"script error: {exc}"))
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 500 else None,
    )
    try:
        page.goto("/login")
        sign_in(page, email, password)
        page.wait_for_url(re.compile(r"/(\?.*)?$"))
        # a young demo with a week of history opens on the week, not on the last 24 hours
        assert page.locator('.range .seg a[aria-current="true"]').inner_text() == "7d"
        screenshot(page, "tour-dashboard")

        page.click('.range .seg a:text-is("30d")')
        page.wait_for_url(re.compile(r"range=30d"))
        page.click('nav[aria-label=Main] a:text-is("Models")')
        page.wait_for_url(re.compile(r"/models\?range=30d"))
        assert page.locator('.range .seg a[aria-current="true"]').inner_text() == "30d"
        # sort the models by cost, biggest first; the order is in the URL
        page.click('#models th.sortable a:text-is("Cost")')
        page.wait_for_url(re.compile(r"sort=-cost_usd"))
        assert page.locator('#models th[aria-sort="descending"]').inner_text().startswith("Cost")
        costs = [
            float(re.sub(r"[^0-9.]", "", c)) if c.startswith("$") else -1.0
            for c in page.locator("#models tbody tr td:nth-child(8)").all_inner_texts()
        ]
        assert costs == sorted(costs, reverse=True), costs
        screenshot(page, "tour-models")

        # the timezone picker keeps the page and its range, and times move with it
        page.select_option("select[data-tz-picker]", "Asia/Seoul")
        page.wait_for_url(re.compile(r"tz=Asia%2FSeoul"))
        assert "range=30d" in page.url and "sort=-cost_usd" in page.url
        page.click('nav[aria-label=Main] a:text-is("Requests")')
        page.wait_for_url(re.compile(r"/requests\?.*tz=Asia%2FSeoul"))
        row = page.locator("#request-rows tr[data-id]").first
        shown = row.locator("td a").first.inner_text()
        created = datetime.fromisoformat(row.get_attribute("data-created").replace("Z", "+00:00"))
        in_seoul = created.astimezone(ZoneInfo("Asia/Seoul")).strftime("%Y-%m-%d %H:%M:%S")
        assert shown == in_seoul, (shown, created)
        screenshot(page, "tour-requests")

        page.goto("/models/qwen3%3A8b?range=7d")
        assert page.locator("h1 .model-name").inner_text() == "qwen3:8b"
        captions = page.locator("figcaption.chart-title").all_inner_texts()
        assert "Output tokens/s p50 / p10" in captions, captions
        screenshot(page, "tour-model-page")

        page.goto("/compare?model=qwen3%3A8b&model=llama3.2&model=gpt-4o-mini&range=7d")
        compared = page.locator("#compare tbody tr").all_inner_texts()
        assert len(compared) == 3, compared
        screenshot(page, "tour-compare")

        long_session = max(
            {r["session_id"] for r in week if r["session_id"]},
            key=lambda s: sum(r["session_id"] == s for r in week),
        )
        page.goto("/sessions?range=7d")
        assert page.locator("table tbody tr").count() > 5
        screenshot(page, "tour-sessions")
        page.goto(f"/sessions/{long_session}?range=7d")
        turns = page.locator("#transcript > li")
        assert turns.count() >= 4, page.content()[:3000]
        screenshot(page, "tour-session-transcript")

        user = next(r["user_id"] for r in week if r["user_name"])
        for name, path in (
            ("users", "/users?range=7d"),
            ("user", f"/users/{user}?range=7d"),
            ("groups", "/groups?range=7d"),
            ("tasks", "/tasks?range=7d"),
            ("request", f"/requests/{week[0]['id']}"),
            ("settings", "/settings"),
            ("settings-openwebui", "/settings/openwebui"),
        ):
            response = page.goto(path)
            assert response is not None and response.status == 200, path
            screenshot(page, f"tour-{name}")
    finally:
        context.close()
    assert not problems, problems
