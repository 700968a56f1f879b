"""Prometheus metrics: records counted into series (caps, replays, refusals), the spool
measured at scrape time, and who may read /metrics, against an in-process app."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from conftest import LiveGateway, free_port, gateway_settings
from heliograph.capture.spool import KIND_END, KIND_START, SpoolWriter, spool_dirs
from heliograph.capture.writer import Writer
from heliograph.config import Settings
from heliograph.store.engine import make_engine
from heliograph.store.inserts import REQUESTS
from heliograph.telemetry.prometheus import (
    DURATION_BUCKETS,
    OTHER_MODEL,
    RecordMetrics,
    local_upstreams,
    observe_many,
    operation_of,
)
from heliograph.telemetry.scrape import SpoolCollector, backlog_records
from mock_upstream import MockUpstream

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by name and sorted labels."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(found: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in found.items() if n == name and want <= set(lab))


def row(rid: str, **values: Any) -> tuple[Any, ...]:
    base = {
        "id": rid,
        "provider": "openai",
        "upstream": "openai",
        "model": "gpt-4o-mini",
        "status": 200,
        "state": "ok",
        "endpoint": "/chat/completions",
        "latency_ms": 1500.0,
        "ttft_ms": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "cost_nusd": 2500,
        "cache_hit": False,
    }
    return REQUESTS.pack({**base, **values})


def exposition(metrics: RecordMetrics) -> Samples:
    from prometheus_client import generate_latest

    return samples(generate_latest(metrics.registry).decode())


# ------------------------------------------------------------------ records into series


def test_batch_counts_new_records_once_with_sums_and_histograms() -> None:
    metrics = RecordMetrics(local=frozenset({"ollama"}))
    rows = [
        row("a", cached_tokens=4, reasoning_tokens=2, ttft_ms=250.0, output_tokens_per_s=900.0),
        row("b", status=500, state="error", prompt_tokens=3, completion_tokens=None, cost_nusd=0),
        row("c", model="llama3", provider="ollama", upstream="ollama", output_tokens_per_s=42.0),
        row("d", cache_hit=True, latency_ms=2.0),
    ]
    metrics.observe(rows, {"a", "b", "c", "d"})
    metrics.observe(rows, set())  # the same records replayed: already stored, not counted
    found = exposition(metrics)
    key = {"provider": "openai", "upstream": "openai", "model": "gpt-4o-mini"}
    assert total(found, "heliograph_requests_total", **key, status="200", state="ok") == 2
    assert total(found, "heliograph_requests_total", **key, status="500", state="error") == 1
    assert total(found, "heliograph_requests_total", model="llama3", provider="ollama") == 1
    assert total(found, "heliograph_records_written_total") == 4
    mini = {"provider": "openai", "model": "gpt-4o-mini"}
    assert total(found, "heliograph_tokens_total", **mini, type="input") == 10 + 3 + 10
    assert total(found, "heliograph_tokens_total", **mini, type="output") == 10
    assert total(found, "heliograph_tokens_total", **mini, type="cached") == 4
    assert total(found, "heliograph_tokens_total", **mini, type="reasoning") == 2
    assert total(found, "heliograph_cost_usd_total", **mini) == pytest.approx(5000e-9)
    assert total(found, "heliograph_cache_hits_total", **mini) == 1
    # histograms: every record with a latency, first-token times of streams only
    assert total(found, "heliograph_request_duration_seconds_count") == 4
    assert total(found, "heliograph_request_duration_seconds_sum") == pytest.approx(4.502)
    le1 = total(found, "heliograph_request_duration_seconds_bucket", le="1.28", **mini)
    assert le1 == 1  # 2 ms; the 1.5 s ones are above 1.28
    assert total(found, "heliograph_time_to_first_token_seconds_count") == 1
    assert total(found, "heliograph_time_to_first_token_seconds_sum") == pytest.approx(0.25)
    # output speed of local models only (a cloud answer's speed is mostly network and queue)
    assert total(found, "heliograph_output_tokens_per_second_sum", model="llama3") == 42.0
    assert total(found, "heliograph_output_tokens_per_second_count") == 1
    genai = {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}
    chat = {**genai, "gen_ai_operation_name": "chat"}
    assert total(found, "gen_ai_client_operation_duration_seconds_count", **chat) == 3
    assert total(found, "gen_ai_server_time_to_first_token_seconds_count", **genai) == 1
    usage = "gen_ai_client_token_usage_sum"
    assert total(found, usage, **genai, gen_ai_token_type="input") == 23
    assert total(found, usage, **genai, gen_ai_token_type="output") == 10
    assert total(found, "gen_ai_client_token_usage_count", gen_ai_token_type="output") == 3


def test_refusals_by_reason() -> None:
    metrics = RecordMetrics()
    metrics.observe(
        [
            row("r1", status=429, state="error", error="Rate limit exceeded: policy '1;w=60'."),
            row("r2", status=429, state="error", error="Rate limit reached for requests"),
            row("b1", status=429, state="refused", error="Budget 'team' exceeded"),
        ],
        {"r1", "r2", "b1"},
    )
    found = exposition(metrics)
    assert total(found, "heliograph_refusals_total", reason="rate_limit") == 1  # r2: upstream's
    assert total(found, "heliograph_refusals_total", reason="budget") == 1


def test_model_label_values_are_capped() -> None:
    metrics = RecordMetrics(max_models=2)
    rows = [row(str(i), model=f"client-model-{i % 5}") for i in range(10)]
    metrics.observe(rows, {str(i) for i in range(10)})
    found = exposition(metrics)
    models = {dict(lab).get("model") for (n, lab) in found if n == "heliograph_requests_total"}
    assert models == {"client-model-0", "client-model-1", OTHER_MODEL}
    assert total(found, "heliograph_requests_total", model=OTHER_MODEL) == 6
    assert total(found, "heliograph_requests_total") == 10
    genai_models = {
        dict(lab).get("gen_ai_request_model")
        for (n, lab) in found
        if n == "gen_ai_client_token_usage_count"
    }
    assert genai_models == {"client-model-0", "client-model-1", OTHER_MODEL}


def test_bulk_observation_equals_observing_one_by_one() -> None:
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    amounts = [0.0, 0.01, 0.011, 0.5, 1.28, 1.2800001, 3.0, 700.0, float("inf"), 2.0, 0.01]
    registry = CollectorRegistry()
    bulk = Histogram("bulk", "", buckets=DURATION_BUCKETS, registry=registry)
    single = Histogram("single", "", buckets=DURATION_BUCKETS, registry=registry)
    observe_many(bulk, amounts)
    for amount in amounts:
        single.observe(amount)
    text = generate_latest(registry).decode()
    bulk_samples = {(n[4:], lab): v for (n, lab), v in samples(text).items() if n[:4] == "bulk"}
    one_samples = {(n[6:], lab): v for (n, lab), v in samples(text).items() if n[:6] == "single"}
    bulk_samples.pop(("_created", ()))
    one_samples.pop(("_created", ()))
    assert bulk_samples == one_samples
    assert bulk_samples[("_count", ())] == len(amounts)
    # a child without the expected internals is observed value by value
    seen: list[float] = []

    class Plain:
        def observe(self, amount: float) -> None:
            seen.append(amount)

    observe_many(Plain(), amounts)
    assert seen == amounts


def test_operation_names() -> None:
    assert operation_of("/chat/completions") == "chat"
    assert operation_of("/v1/messages") == "chat"
    assert operation_of("/api/embed") == "embeddings"
    assert operation_of("/completions") == "text_completion"
    assert operation_of("/models") == "other"
    assert operation_of(None) == "other"


# ------------------------------------------------------------------ the spool at scrape time


def test_spool_backlog_records_bytes_and_estimate(tmp_path: Path) -> None:
    root = tmp_path / "spool"
    collector = SpoolCollector(root)
    assert {m.name: m.samples[0].value for m in collector.collect()} == {
        "heliograph_spool_backlog_bytes": 0,
        "heliograph_spool_backlog_records": 0,
        "heliograph_writer_lag_seconds": 0,
    }
    writer = SpoolWriter(root, 1024 * 1024)
    try:
        for i in range(40):
            rid = b'{"id": "%d"}' % i
            writer.append(KIND_START, rid, b"x" * 100)
            writer.append(KIND_END, rid, b"y" * 50)
        writer.append(KIND_START, b'{"id": "in-flight"}', b"z")  # not a record yet
        got = {m.name: m.samples[0].value for m in collector.collect()}
        assert got["heliograph_spool_backlog_records"] == 40
        assert got["heliograph_spool_backlog_bytes"] > 40 * 150
        # a small scan budget: the rest is extrapolated from the bytes per record seen
        assert 36 <= backlog_records(root, scan_bytes=2000) <= 44
        [spool] = spool_dirs(root)
        frames = list(spool.read_frames(final=False, limit=1000))
        spool.save_checkpoint(frames[20].position)  # ten records committed
        assert backlog_records(root) == 30
    finally:
        writer.close()


# ------------------------------------------------------------------ /metrics over HTTP


@pytest.fixture
def gw(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    mock.reset()
    listen = f"127.0.0.1:{free_port()}"
    settings = gateway_settings(
        tmp_path, f"sqlite:///{tmp_path / 'm.db'}", mock.url, metrics_listen=listen
    )
    gateway = LiveGateway(settings).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def chat(gw: LiveGateway, model: str, **headers: str) -> int:
    with openai.OpenAI(base_url=gw.openai_url, api_key="sk-p", max_retries=0) as client:
        try:
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Say hello"}],
                extra_headers=headers,
            )
        except openai.APIStatusError as exc:
            return exc.status_code
    return 200


def scrape(gw: LiveGateway, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(gw.base_url + "/metrics", headers=headers, timeout=10)


def test_metrics_endpoint_matches_the_stored_records(gw: LiveGateway) -> None:
    assert [chat(gw, "gpt-4o-mini") for _ in range(3)] == [200] * 3
    assert chat(gw, "gpt-4o", **{"x-mock-status": "500"}) == 500
    policy = {"Helicone-RateLimit-Policy": "1;w=60"}
    assert [chat(gw, "gpt-4o", **policy) for _ in range(2)] == [200, 429]
    rows = gw.wait_records(6)
    found = samples(scrape(gw, gw.org.read_key).text)
    assert total(found, "heliograph_requests_total") == 6
    for model in ("gpt-4o-mini", "gpt-4o"):
        for status in ("200", "500", "429"):
            stored = sum(1 for r in rows if r["model"] == model and str(r["status"]) == status)
            seen = total(found, "heliograph_requests_total", model=model, status=status)
            assert seen == stored, (model, status)
    assert total(found, "heliograph_requests_total", status="429", state="error") == 1
    assert total(found, "heliograph_refusals_total", reason="rate_limit") == 1
    assert total(found, "heliograph_refusals_total", reason="budget") == 0
    inputs = sum(r["prompt_tokens"] or 0 for r in rows)
    assert inputs > 0 and total(found, "heliograph_tokens_total", type="input") == inputs
    outputs = sum(r["completion_tokens"] or 0 for r in rows)
    assert total(found, "heliograph_tokens_total", type="output") == outputs
    cost = sum(r["cost_usd"] or 0 for r in rows)
    assert cost > 0
    assert total(found, "heliograph_cost_usd_total") == pytest.approx(cost, rel=1e-9)
    assert total(found, "heliograph_records_written_total") == 6
    assert total(found, "heliograph_spool_backlog_records") == 0
    # no record content in the series: a prompt, a key, a user id never appear
    text = scrape(gw, gw.org.admin_key).text
    assert "Say hello" not in text and gw.org.write_key not in text


def test_metrics_need_a_read_key(gw: LiveGateway) -> None:
    assert scrape(gw, None).status_code == 401
    assert scrape(gw, "hg-not-a-key").status_code == 401
    assert scrape(gw, gw.org.write_key).status_code == 403
    # the series are the whole server's: org-b (not the first organization) may not read them
    assert scrape(gw, gw.other.read_key).status_code == 403
    assert scrape(gw, gw.other.admin_key).status_code == 403
    for key in (gw.org.read_key, gw.org.admin_key):
        resp = scrape(gw, key)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain")
        assert "heliograph_spool_backlog_bytes" in resp.text


def test_separate_listener_serves_without_a_key(gw: LiveGateway) -> None:
    assert chat(gw, "gpt-4o-mini") == 200
    gw.wait_records(1)
    listen = gw.settings.metrics_listen
    resp = httpx.get(f"http://{listen}/metrics", timeout=10)
    assert resp.status_code == 200
    found = samples(resp.text)
    assert total(found, "heliograph_requests_total", model="gpt-4o-mini", status="200") == 1


# ------------------------------------------------------------------ the writer counts


def test_writer_counts_written_records_and_store_errors(engine: Engine, tmp_path: Path) -> None:
    """A record the store refuses is a store error (and is still written as its essentials);
    a store that cannot be reached is one too, and nothing is counted as written then."""
    from test_writer_refused import spool_records

    metrics = RecordMetrics()
    spool_records(tmp_path / "spool", 12, {3: {"ts": 1e300}})
    writer = Writer(engine, tmp_path / "spool", batch_size=50, metrics=metrics)
    assert writer.drain().records == 12
    assert writer.drain().records == 0
    found = exposition(metrics)
    assert total(found, "heliograph_records_written_total") == 12
    assert total(found, "heliograph_requests_total", model="gpt-4o-mini", status="200") == 12
    assert total(found, "heliograph_store_errors_total") == 1

    down = make_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    spool_records(tmp_path / "spool2", 2, {})
    failing = RecordMetrics()
    unreachable = Writer(down, tmp_path / "spool2", poll_interval=0.01, metrics=failing)
    stop = threading.Event()
    thread = threading.Thread(target=unreachable.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if total(exposition(failing), "heliograph_store_errors_total") >= 1:
                break
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(10)
    counted = exposition(failing)
    assert total(counted, "heliograph_store_errors_total") >= 1
    assert total(counted, "heliograph_records_written_total") == 0
    down.dispose()


def test_local_upstreams_follow_the_dashboards_rule(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        upstreams={
            "myllm": {"url": "http://10.0.0.5:8000/v1"},  # a private address: local
            "openai": {"url": "http://127.0.0.1:9/v1", "local": False},  # said so: cloud
            "boxllm": {"url": "https://llm.example.com/v1", "local": True},
        },
    )
    local = local_upstreams(settings)
    assert {"myllm", "boxllm", "ollama"} <= local
    assert not local & {"openai", "groq", "anthropic"}
