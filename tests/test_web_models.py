"""The Models page, a model's page, the comparison view and the local-versus-cloud block,
over real HTTP on both store dialects, from records written straight into the store (so the
figures are known exactly): figures, drill-through links, sorting in the URL, escaping."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from markupsafe import escape

from conftest import LiveGateway, gateway_settings
from heliograph.config import UpstreamConfig
from heliograph.store.engine import make_engine
from heliograph.web.dashboard import served_locally
from heliograph.web.models import errors_since
from mock_upstream import MockUpstream
from models_support import IMG, SCRIPT, records, stat, table, upstreams
from query_support import insert
from web_support import WebClient, add_user

EMAIL = "models@example.com"


@pytest.fixture
def site(tmp_path: Path, mock: MockUpstream, db_url: str) -> Iterator[WebClient]:
    settings = gateway_settings(
        tmp_path, db_url, mock.url, writer="off", upstreams=upstreams(mock.url)
    )
    gw = LiveGateway(settings).start()
    try:
        engine = make_engine(settings.sqlalchemy_url)
        insert(engine, records(gw.org.id))
        engine.dispose()
        add_user(gw, EMAIL)
        with WebClient(gw, EMAIL) as web:
            yield web
    finally:
        gw.stop()


def test_models_page_local_cloud_and_sorting(site: WebClient) -> None:
    page = site.get("/models", range="24h")
    assert page.status_code == 200, page.text[:500]
    text = page.text
    sides = {r[0]: r for r in table(text, "local-cloud")}
    # Where, Models, Requests, Cost, p50 latency, p50 TTFT, p50 tok/s
    assert sides["local"][1:4] == ["2", "5", "$0*"]  # llama3.2 on ollama, the gpu-box model
    assert sides["cloud"][1:4] == ["2", "5", "$0.154"]  # groq's llama3.2, gpt-4o
    assert sides["local"][4:7] == ["875 ms", "150 ms", "17.5/s"]
    [both] = table(text, "both-ways")
    assert both[:4] == ["llama3.2", "6", "4", "2"]
    assert both[4:6] == ["$0", "$0.004"]
    models = table(text, "models")
    assert [r[1] for r in models] == ["llama3.2", "gpt-4o", SCRIPT]
    llama = models[0]
    assert llama[2] == "both" and llama[3] == "ollama, groq" and llama[4] == "6"
    assert llama[13] == "1"  # a cold start
    assert models[2][2] == "local"  # gpu-box: a private address
    # every numeric column sorts, both ways, and the sort is in the URL
    by_cost = table(site.get("/models", range="24h", sort="-cost_usd").text, "models")
    assert [r[1] for r in by_cost] == ["gpt-4o", "llama3.2", SCRIPT]
    by_latency = table(site.get("/models", range="24h", sort="p50_latency_ms").text, "models")
    assert [r[1] for r in by_latency] == ["llama3.2", SCRIPT, "gpt-4o"]
    assert 'href="/models?range=24h&amp;sort=-cost_usd"' in text
    # a model's name links to its page, its upstreams to the model x upstream page
    assert 'href="/models/llama3.2?range=24h&amp;upstream=groq"' in text
    assert '<input type="checkbox" name="model" value="llama3.2"' in text
    # hostile names are shown, escaped, never as markup
    assert SCRIPT not in text and html.escape(SCRIPT, quote=False) in text
    dash = site.get("/", range="24h").text
    assert SCRIPT not in dash and IMG not in dash
    dash_sides = {r[0]: r[2] for r in table(dash, "local-cloud")}
    assert dash_sides == {"local": "5", "cloud": "5"}
    assert table(dash, "both-ways")[0][:2] == ["llama3.2", "6"]


def test_a_models_page(site: WebClient) -> None:
    page = site.get("/models/llama3.2", range="24h")
    assert page.status_code == 200, page.text[:500]
    text = page.text
    assert stat(text, "Requests") == "6"
    assert stat(text, "Cost") == "$0.004"
    assert stat(text, "Cold starts") == "1"
    assert stat(text, "Tokens") == "240"
    served = {r[0]: r for r in table(text, "served-by")}
    assert served["ollama"][2:4] == ["local", "4"] and served["groq"][2:4] == ["cloud", "2"]
    for chart_id in ("chart-latency", "chart-ttft", "chart-tps", "chart-ptps", "chart-cold"):
        assert f'id="{chart_id}"' in text, chart_id
    assert 'id="chart-error-rate"' in text and 'id="chart-upstream-latency"' in text
    assert 'id="chart-histogram"' in text
    assert "min_latency=750&amp;max_latency=1000" in text  # a histogram bar's drill-through
    assert "model=llama3.2" in text and "/requests?" in text
    top = re.search(r'id="model-users".*?</table>', text, re.S)
    assert top and "alice" in top.group(0) and "bob" in top.group(0)
    # one upstream of the model
    groq = site.get("/models/llama3.2", range="24h", upstream="groq").text
    assert stat(groq, "Requests") == "2" and stat(groq, "Cost") == "$0.004"
    assert 'id="chart-upstream-latency"' not in groq
    assert "upstream=groq" in groq
    # recent errors of gpt-4o, and a user with a hostile id shown escaped
    gpt = site.get("/models/gpt-4o", range="24h").text
    assert stat(gpt, "Error rate") == "33%"
    assert re.search(r'<h2 id="recent-errors">.*?<tr data-id=', gpt, re.S)
    assert IMG not in gpt and str(escape(IMG)) in gpt
    assert 'href="/models/gpt-4o?range=24h&amp;errors_sort=-latency"' in gpt
    by_latency = site.get("/models/gpt-4o", range="24h", errors_sort="latency").text
    assert len(table(by_latency, "recent-errors-table")) == 1
    assert "Latency ▲" in by_latency
    hostile = site.get("/models/" + quote(SCRIPT, safe=""), range="24h")
    assert hostile.status_code == 200
    assert SCRIPT not in hostile.text and stat(hostile.text, "Requests") == "1"
    # a name with a slash is one path segment; a model without traffic is an empty page
    slash = site.get("/models/" + quote("Qwen/Qwen3-32B", safe=""), range="24h")
    assert slash.status_code == 200
    assert '<span class="model-name">Qwen/Qwen3-32B</span>' in slash.text
    assert "No requests for this model in this time range." in slash.text
    assert stat(slash.text, "Requests") == "0"
    # sortable tables, each with its own parameter
    asc = table(site.get("/models/llama3.2", range="24h", up_sort="requests").text, "served-by")
    assert [r[0] for r in asc] == ["groq", "ollama"]


def test_compare_view(site: WebClient) -> None:
    page = site.get("/compare", range="24h", model=["llama3.2", "gpt-4o"])
    assert page.status_code == 200, page.text[:500]
    rows = {r[0]: r for r in table(page.text, "compare")}
    assert set(rows) == {"llama3.2", "gpt-4o"}
    assert rows["llama3.2"][1] == "6" and rows["gpt-4o"][1] == "3"
    assert rows["gpt-4o"][2] == "$0.15"
    assert rows["gpt-4o"][12] == "33%"
    assert page.text.count('<svg class="chart"') == 8
    by_latency = table(
        site.get(
            "/compare", range="24h", model=["llama3.2", "gpt-4o"], sort="-p50_latency_ms"
        ).text,
        "compare",
    )
    assert [r[0] for r in by_latency] == ["gpt-4o", "llama3.2"]
    # the traffic filter applies to every model alike
    cloud = table(
        site.get("/compare", range="24h", model=["llama3.2", "gpt-4o"], upstream="groq").text,
        "compare",
    )
    assert {r[0]: r[1] for r in cloud} == {"llama3.2": "2", "gpt-4o": "0"}
    one = site.get("/compare", range="24h", model="llama3.2").text
    assert "Pick two to four models" in one and '<svg class="chart"' not in one
    five = site.get("/compare", range="24h", model=["a", "b", "c", "d", "e"]).text
    assert "At most 4 models" in five
    hostile = site.get("/compare", range="24h", model=[SCRIPT, IMG]).text
    assert SCRIPT not in hostile and IMG not in hostile


def test_recent_errors_are_looked_for_only_where_the_rollups_saw_them() -> None:
    points = [{"start_ms": i * 10, "errors": e} for i, e in enumerate([5, 0, 3, 0, 1])]
    assert errors_since(points, 4) == 20  # the last three buckets hold four errors
    assert errors_since(points, 1) == 40
    assert errors_since(points, 100) == 0  # fewer than wanted: all of them
    assert errors_since([{"start_ms": 0, "errors": 0}] * 3, 10) is None


def test_served_locally_follows_the_upstream_then_the_provider() -> None:
    configs = {
        "box": UpstreamConfig(url="https://gpu.example.com/v1", provider="vllm", local=True),
        "rented": UpstreamConfig(url="https://gpu.example.com/v1", provider="vllm"),
        "lan": UpstreamConfig(url="http://192.168.1.9:8000/v1"),
        "ollama": UpstreamConfig(url="https://ollama.example.com", local=False),
    }
    assert served_locally("box", "vllm", configs)  # said so
    assert not served_locally("rented", "vllm", configs)  # a public address
    assert served_locally("lan", "openai", configs)  # a private address
    assert not served_locally("ollama", "ollama", configs)  # said so, beats the name
    assert served_locally("gone", "ollama", configs) is False  # the provider's own config
    assert served_locally("gone", "vllm", configs)  # a known local server, unconfigured
    assert not served_locally("gone", "openai", configs)
