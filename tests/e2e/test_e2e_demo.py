"""`heliograph demo` as a user runs it: HELIOGRAPH_HOME set, a free `--port`, nothing else.

Within a bounded wait its simulated cloud models (OpenAI, Anthropic) and local models (Ollama)
show up in the store, priced as what they are, and in the dashboard with the printed login.
"""

from __future__ import annotations

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
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_harness import clean_environment, dashboard_login, heliograph_command, model_badges

from conftest import free_port

pytestmark = pytest.mark.slow

WAIT = 60.0
CLOUD = ("openai", "anthropic")


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
    for provider in (*CLOUD, "ollama"):
        assert f">{provider}<" in requests_page, f"{provider} not on the Requests page"
    assert {"gpt-4o-mini", "claude-sonnet-4-6", "llama3.2"} <= set(badges), badges
    wrong = {
        model: where
        for model, where in badges.items()
        if where != ("local" if model in ("llama3.2", "qwen3:8b") else "cloud")
    }
    assert not wrong, f"simulated models badged wrongly on /models: {wrong}"
