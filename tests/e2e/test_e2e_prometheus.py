"""Prometheus scrapes `heliograph serve --workers 2`, as the README configures it.

The server is configured by environment variables and config.toml only; traffic goes through
the real `openai` package (plain and streamed chats, an upstream error, a rate-limit refusal,
a budget refusal, more models than the label cap). The real Prometheus server (Debian's
`prometheus`, started here on a free port with a generated config) scrapes /metrics with a
read key, and the values read back through its query API must equal the traffic sent:
requests by model, status and state; tokens; cost; refusals; records written. The separate
unauthenticated listener of `metrics_listen` serves the same series.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from e2e_harness import Heliograph, descendants, genai_cost, serving

from conftest import IN_CI, free_port
from mock_upstream import MockUpstream, prompt_tokens_for

pytestmark = pytest.mark.slow

PROMETHEUS = "/usr/bin/prometheus"
WAIT_S = 60.0
MAX_MODELS = 3  # config.toml's metrics_max_models: the fourth model is counted as "other"
CONFIG = """\
metrics_max_models = {max_models}
metrics_listen = "{listen}"

[[budgets]]
name = "one-request"
window = "day"
limit_requests = 1
scope = {{ user_id = "capped" }}
"""
PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: heliograph
    metrics_path: /metrics
    authorization:
      credentials: {key}
    static_configs:
      - targets: ["127.0.0.1:{port}"]
  - job_name: heliograph-private
    static_configs:
      - targets: ["{listen}"]
"""


def prometheus_binary() -> str:
    found = shutil.which("prometheus") or (PROMETHEUS if Path(PROMETHEUS).exists() else None)
    if found is None:
        message = "the prometheus server is not installed (apt-get install prometheus)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def listen() -> str:
    """The unauthenticated metrics listener's address (config.toml's metrics_listen)."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, upstream: MockUpstream, listen: str
) -> Iterator[Heliograph]:
    home = tmp_path_factory.mktemp("prom-home")
    (home / "config.toml").write_text(CONFIG.format(max_models=MAX_MODELS, listen=listen))
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url,
        "HELIOGRAPH_UPSTREAM_OPENAI_LOCAL": "false",
    }
    with serving(home, env, workers=2) as serve:
        yield serve


class Prometheus:
    """The real Prometheus server scraping Heliograph every second."""

    def __init__(self, binary: str, workdir: Path, key: str, port: int, listen: str) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(PROMETHEUS_CONFIG.format(key=key, port=port, listen=listen))
        self.log = (workdir / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        resp = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5)
        resp.raise_for_status()
        result: list[dict[str, Any]] = resp.json()["data"]["result"]
        return result

    def values(self, expr: str, *by: str) -> dict[tuple[str, ...], float]:
        """The instant vector of ``expr`` as {label values in ``by`` order: value}."""
        return {
            tuple(r["metric"].get(label, "") for label in by): float(r["value"][1])
            for r in self.query(expr)
        }

    def wait(self, expr: str, want: float, timeout: float = WAIT_S) -> float:
        """The scalar value of ``expr`` once it equals ``want`` (or the last one seen)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited:\n" + self.output())
            try:
                got = self.values(expr)
            except httpx.HTTPError:
                got = {}
            last = got.get(())
            if last == want:
                return last
            time.sleep(0.5)
        raise AssertionError(f"{expr} = {last}, expected {want}\n" + self.output()[-2000:])

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


def chat(serve: Heliograph, model: str, text: str, *, stream: bool = False, **headers: str) -> int:
    """One chat through the real openai package; its HTTP status."""
    with openai.OpenAI(base_url=serve.url("v1"), api_key="sk-client", max_retries=0) as client:
        try:
            messages: Any = [{"role": "user", "content": text}]
            if stream:
                chunks = client.chat.completions.create(
                    model=model,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=headers,
                )
                for _chunk in chunks:
                    pass
            else:
                client.chat.completions.create(
                    model=model, messages=messages, extra_headers=headers
                )
        except openai.APIStatusError as exc:
            return exc.status_code
    return 200


def test_prometheus_reads_what_was_sent(server: Heliograph, listen: str, tmp_path: Path) -> None:
    binary = prometheus_binary()
    created = httpx.post(
        server.base_url + "/api/v1/keys",
        json={"name": "prometheus", "scope": "read"},
        headers={"Authorization": f"Bearer {server.admin_key}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    read_key = created.json()["key"]

    text = "Say hello to the metrics"  # the mock's token counts follow the prompt's length
    tin, tout = prompt_tokens_for(len(text)), 5
    sent: list[tuple[str, int, str]] = []  # (model, status, state) of every request

    def send(model: str, status: int, state: str, **kwargs: Any) -> None:
        assert chat(server, model, text, **kwargs) == status, (model, kwargs)
        sent.append((model, status, state))

    for _ in range(3):
        send("gpt-4o-mini", 200, "ok")
    for _ in range(2):
        send("gpt-4o", 200, "ok", stream=True)
    send("gpt-4o-mini", 500, "error", **{"x-mock-status": "500"})
    policy = {"Helicone-RateLimit-Policy": "1;w=60;s=user", "Helicone-User-Id": "limited"}
    send("gpt-4o-mini", 200, "ok", **policy)
    send("gpt-4o-mini", 429, "error", **policy)
    send("gpt-4o-mini", 200, "ok", **{"Helicone-User-Id": "capped"})
    send("gpt-4o-mini", 429, "refused", **{"Helicone-User-Id": "capped"})
    send("gpt-4.1-mini", 200, "ok")  # the third model: still under the cap
    send("o3-mini", 200, "ok")  # the fourth: counted as "other"
    total = len(sent)

    prometheus = Prometheus(binary, tmp_path, read_key, server.port, listen)
    try:
        prometheus.wait("sum(heliograph_records_written_total{job='heliograph'})", total)
        assert prometheus.values('up{job="heliograph"}') == {(): 1.0}

        by_model = prometheus.values(
            "sum by (model, status, state) (heliograph_requests_total{job='heliograph'})",
            "model",
            "status",
            "state",
        )
        expected: dict[tuple[str, ...], float] = {}
        for model, status, state in sent:
            label = "other" if model == "o3-mini" else model
            key = (label, str(status), state)
            expected[key] = expected.get(key, 0) + 1
        assert by_model == expected

        # tokens: every answered request had the same prompt and the mock's 5-token reply;
        # errors and refusals carry none (nothing is estimated for a failed request)
        answered = [m for m, status, _ in sent if status == 200]
        tokens = prometheus.values(
            "sum by (type) (heliograph_tokens_total{job='heliograph'})", "type"
        )
        assert tokens == {("input",): tin * len(answered), ("output",): tout * len(answered)}

        cost = prometheus.values(
            "sum by (model) (heliograph_cost_usd_total{job='heliograph'})", "model"
        )
        want_cost = {
            model: genai_cost(model, "openai", tin, tout) * answered.count(model)
            for model in ("gpt-4o-mini", "gpt-4o", "gpt-4.1-mini")
        }
        assert set(cost) - {("other",)} == {(m,) for m in want_cost}
        for model, usd in want_cost.items():
            assert cost[(model,)] == pytest.approx(usd, rel=1e-9), model

        refusals = prometheus.values(
            "sum by (reason) (heliograph_refusals_total{job='heliograph'})", "reason"
        )
        assert refusals == {("rate_limit",): 1.0, ("budget",): 1.0}
        durations = prometheus.values(
            "sum(heliograph_request_duration_seconds_count{job='heliograph'})"
        )
        assert durations == {(): float(total)}
        streamed = prometheus.values(
            "sum by (gen_ai_request_model) (gen_ai_server_time_to_first_token_seconds_count{job='heliograph'})",
            "gen_ai_request_model",
        )
        assert streamed.get(("gpt-4o",)) == 2.0
        usage = prometheus.values(
            "sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum{job='heliograph'})",
            "gen_ai_token_type",
        )
        assert usage == {("input",): tokens[("input",)], ("output",): tokens[("output",)]}
        prometheus.wait("sum(heliograph_spool_backlog_records{job='heliograph'})", 0)

        # the writer process kept them in prometheus_client's multiprocess files in the home
        assert list((server.home / "metrics").glob("counter_*.db")), "no multiprocess files"
        # the private listener of metrics_listen serves the same series without a key
        prometheus.wait('sum(heliograph_requests_total{job="heliograph-private"})', total)

        # a writer process that dies is restarted by serve: its successor's counts add to the
        # dead one's (its files stay), so no counter goes back
        os.kill(writer_pid(server), signal.SIGKILL)
        for _ in range(2):
            send("gpt-4o-mini", 200, "ok")
        prometheus.wait("sum(heliograph_records_written_total{job='heliograph'})", total + 2)
        after = prometheus.values(
            "sum by (model) (heliograph_requests_total{job='heliograph', status='200'})", "model"
        )
        assert after[("gpt-4o-mini",)] == expected[("gpt-4o-mini", "200", "ok")] + 2
        resets = prometheus.values("sum(resets(heliograph_records_written_total[5m]))")
        assert resets == {(): 0.0}
    finally:
        prometheus.stop()


def writer_pid(server: Heliograph) -> int:
    """The writer process of the server: the one holding the spool's writer lock."""
    assert server.proc is not None
    lock = str(server.home / "spool" / "writer.lock")
    for pid in descendants(server.proc.pid):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == lock:
                        return pid
    raise AssertionError("no process holds the writer lock")


def test_scrape_with_a_write_key_is_refused(server: Heliograph, listen: str) -> None:
    for key, status in ((server.write_key, 403), ("", 401), (server.admin_key, 200)):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        resp = httpx.get(server.base_url + "/metrics", headers=headers, timeout=10)
        assert resp.status_code == status, (key[:6], resp.text[:200])
    resp = httpx.get(f"http://{listen}/metrics", timeout=10)
    assert resp.status_code == 200 and "heliograph_spool_backlog_bytes" in resp.text


def test_without_a_writer_the_backlog_shows(tmp_path: Path, upstream: MockUpstream) -> None:
    """HELIOGRAPH_WRITER=off: no record series (nothing is written), and the spool gauges
    count the records waiting, scraped from either worker."""
    env = {"HELIOGRAPH_UPSTREAM_OPENAI_URL": upstream.url, "HELIOGRAPH_WRITER": "off"}
    serve = Heliograph(tmp_path / "home", free_port(), workers=2, env=env)
    try:
        serve.start()
        for _ in range(3):
            assert chat(serve, "gpt-4o-mini", "Say hello to nobody") == 200
        headers = {"Authorization": f"Bearer {serve.admin_key}"}
        deadline = time.monotonic() + WAIT_S
        gauges: dict[str, float] = {}
        while time.monotonic() < deadline:
            resp = httpx.get(serve.base_url + "/metrics", headers=headers, timeout=10)
            assert resp.status_code == 200, resp.text[:300]
            gauges = {
                line.split()[0]: float(line.split()[1])
                for line in resp.text.splitlines()
                if line.startswith("heliograph_") and " " in line
            }
            if gauges.get("heliograph_spool_backlog_records") == 3:
                break
            time.sleep(0.2)
        assert gauges.get("heliograph_spool_backlog_records") == 3, gauges
        assert gauges["heliograph_spool_backlog_bytes"] > 0
        assert gauges["heliograph_writer_lag_seconds"] > 0
        assert not any(name.startswith("heliograph_requests_total") for name in gauges)
    finally:
        serve.stop()
