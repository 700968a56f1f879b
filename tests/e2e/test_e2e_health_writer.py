"""Readiness and a separate writer, as an orchestrator runs them.

`heliograph serve` with HELIOGRAPH_WRITER=off and `heliograph writer` on the same home, both
subprocesses, the store on PostgreSQL behind a TCP proxy the test can cut:
- records sent with the real `openai` package reach the store through the standalone writer;
- with the writer stopped, the spool backlog passes its threshold and /health/ready says 503
  while /health/live stays 200 and traffic is still answered; a new writer drains it and
  readiness comes back;
- with the store cut, readiness fails once the grace has passed (traffic still answered and
  spooled), and comes back with the store, which then has every record.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, clean_environment, heliograph_command, new_id, wait_for

from conftest import create_pg_database, free_port
from mock_upstream import MockUpstream
from tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow

CHAT: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Writer:
    """`heliograph writer` on a home, as a subprocess."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Writer:
        self.proc = subprocess.Popen(
            [*heliograph_command(), "writer"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        return self

    def stop(self) -> str:
        assert self.proc is not None
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=40)
        assert self.proc.returncode == 0, out
        return out


@pytest.fixture
def pg_behind_proxy(pg_admin: str) -> Iterator[tuple[str, TcpProxy]]:
    url, drop = create_pg_database(pg_admin)
    proxy = TcpProxy("127.0.0.1", 5432, free_port()).start()
    try:
        yield url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"), proxy
    finally:
        proxy.down()
        drop()


def ready(serve: Heliograph) -> httpx.Response:
    return httpx.get(serve.base_url + "/health/ready", timeout=10)


def test_separate_writer_and_readiness(
    tmp_path: Path, mock: MockUpstream, pg_behind_proxy: tuple[str, TcpProxy]
) -> None:
    url, proxy = pg_behind_proxy
    assert "5432" not in url
    home = tmp_path / "home"
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": mock.url,
        "HELIOGRAPH_DATABASE_URL": url,
        "HELIOGRAPH_WRITER": "off",
        "HELIOGRAPH_READY_STORE_GRACE_S": "2",
        "HELIOGRAPH_READY_MAX_SPOOL_BYTES": "6000",
    }
    serve = Heliograph(home, free_port(), env=env).start()
    writer_env = {**clean_environment(), "HELIOGRAPH_HOME": str(home), **env}
    writer_env.pop("HELIOGRAPH_WRITER")
    writer = Writer(writer_env).start()
    client = openai.OpenAI(base_url=serve.url("v1"), api_key="sk-test", max_retries=0)

    def send() -> str:
        rid = new_id()
        client.chat.completions.create(**CHAT, extra_headers={"Helicone-Request-Id": rid})
        return rid

    try:
        assert serve.record(send())["state"] == "ok"  # stored by the standalone writer
        assert ready(serve).status_code == 200 and ready(serve).json()["status"] == "ready"

        # no writer: the backlog grows past its threshold; live, and still answering
        assert "Writer stopped." in writer.stop()
        waiting = [send() for _ in range(12)]
        resp = ready(serve)
        assert resp.status_code == 503, resp.text
        assert resp.json()["spool_backlog_bytes"] > 6000
        assert "spool backlog" in resp.json()["problems"][0]
        assert httpx.get(serve.base_url + "/health/live", timeout=5).status_code == 200
        writer = Writer(writer_env).start()
        for rid in waiting:
            assert serve.record(rid)["state"] == "ok"
        wait_for("readiness after the drain", lambda: ready(serve).status_code == 200)

        # the store cut: ready fails after the grace, traffic is answered and spooled
        proxy.down()
        cut = [send() for _ in range(2)]
        wait_for("readiness to fail", lambda: ready(serve).status_code == 503)
        problems = ready(serve).json()["problems"]
        assert any(p.startswith("store unreachable") for p in problems), problems
        assert httpx.get(serve.base_url + "/health/live", timeout=5).status_code == 200
        cut.append(send())
        proxy.up()
        wait_for("readiness with the store back", lambda: ready(serve).status_code == 200)
        for rid in cut:
            assert serve.record(rid)["state"] == "ok"
    finally:
        client.close()
        if writer.proc is not None and writer.proc.poll() is None:
            writer.stop()
        serve.stop()
