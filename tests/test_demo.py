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
