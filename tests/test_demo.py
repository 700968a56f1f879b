"""`heliograph demo` starts, labels itself as simulated, and fills every page by itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from conftest import free_port
from heliograph.config import Settings
from heliograph.demo.simulator import demo_upstreams
from heliograph.demo.traffic import USERS


def test_demo_populates_every_page_through_the_gateway(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "heliograph", "demo", "--port", str(port), "--home", str(tmp_path)],
        env={**os.environ, "HELIOGRAPH_WRITER_POLL_INTERVAL": "0.05"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "Sending demo traffic" in line:
                break
        text = "".join(lines)
        assert "SIMULATED" in text
        email, password = re.search(r"log in as (\S+) / (\S+)", text).groups()  # type: ignore[union-attr]
        with httpx.Client(base_url=base, timeout=15) as web:
            page = web.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            assert (
                web.post(
                    "/login", data={"email": email, "password": password, "csrf_token": token}
                ).status_code
                == 303
            )
            deadline = time.monotonic() + 60
            seen: set[str] = set()
            while time.monotonic() < deadline:
                html = web.get("/requests", params={"range": "1h"}).text
                seen = {p for p in ("openai", "anthropic", "ollama") if f">{p}<" in html}
                if seen == {"openai", "anthropic", "ollama"}:
                    break
                time.sleep(0.5)
            assert seen == {"openai", "anthropic", "ollama"}, seen
            cold = False
            while not cold and time.monotonic() < deadline:  # a local model's first call loads it
                for model in ("llama3.2", "qwen3:8b"):
                    listing = web.get("/requests", params={"model": model, "range": "1h"}).text
                    for rid in re.findall(r'<tr data-id="([^"]+)"', listing)[-3:]:
                        cold = cold or "cold start" in web.get(f"/requests/{rid}").text
                time.sleep(0.5)
            assert cold, "no request shows a cold local model"
            for path in ("/", "/requests", "/models", "/users", "/sessions", "/settings"):
                resp = web.get(path)
                assert resp.status_code == 200, path
                assert "simulated" in resp.text.lower(), f"{path} is not labelled as a demo"
            users_page = web.get("/users").text
            assert any(f">{name}<" in users_page for name in USERS), "no demo user listed"
            assert "demo-" in web.get("/sessions").text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


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
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:  # the banner is printed before the server starts
        lines.append(line)
        if "Data directory" in line:
            break
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "".join(lines)
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, "".join(lines)
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    _stop(proc)
    raise AssertionError("the demo did not become healthy:\n" + "".join(lines))


def _stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    if proc.stdout is not None:
        proc.stdout.close()


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
        made = list((tmp_path / "tmp").iterdir())
        assert len(made) == 1 and made[0].name.startswith("heliograph-demo-"), made
        assert (made[0] / "heliograph.db").exists()
        assert f"Data directory: {made[0]}  (a new temporary directory" in text
        assert not (tmp_path / "user" / ".heliograph").exists(), "the demo used ~/.heliograph"
    finally:
        _stop(proc)


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
