"""A model's page and the local-versus-cloud block of `heliograph serve`, with real clients.

The server runs as users run it: a subprocess configured only by environment variables, a
cloud-like OpenAI upstream (the mock, declared not local) and an Ollama upstream (the Ollama
mock, local by its kind). The real ``openai`` and ``ollama`` packages send traffic, llama3.2
through both (so it is served both ways), with a cold start and a failure on Ollama. The admin
from HELIOGRAPH_ADMIN_EMAIL/_PASSWORD logs in; the figures on /models/llama3.2 and in the
Dashboard's local-versus-cloud block are the ones computed here from the stored records, read
back through the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ollama
import openai
import pytest
from e2e_harness import (
    Heliograph,
    admin_env,
    cloud_and_ollama_env,
    dashboard_login,
    marker,
    new_id,
    serving,
)

from heliograph.web.format import pct, tokens, usd
from mock_ollama import MockOllama
from mock_upstream import MockUpstream
from models_support import stat, table

pytestmark = pytest.mark.slow

ADMIN_EMAIL = "models-e2e@example.com"
ADMIN_PASSWORD = "e2e models correct horse"
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def cloud() -> Iterator[MockUpstream]:
    with MockUpstream() as mock:
        yield mock


@pytest.fixture(scope="module")
def local() -> Iterator[MockOllama]:
    with MockOllama() as mock:
        yield mock


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, cloud: MockUpstream, local: MockOllama
) -> Iterator[Heliograph]:
    home: Path = tmp_path_factory.mktemp("models-home")
    # the OpenAI mock stands for the cloud API
    env = {**cloud_and_ollama_env(cloud, local), **admin_env(ADMIN_EMAIL, ADMIN_PASSWORD)}
    with serving(home, env) as serve:
        yield serve


def headers(rid: str, user: str, **extra: str) -> dict[str, str]:
    return {"Helicone-Request-Id": rid, "Helicone-User-Id": user, **extra}


def chat(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"Say hello {text}"}]


def send_traffic(server: Heliograph) -> list[str]:
    """Cloud: gpt-4o-mini twice (one stream) and llama3.2 once; local: llama3.2 three times
    (one a cold start, one failing). Returns the request ids."""
    ids = [new_id() for _ in range(6)]
    with openai.OpenAI(base_url=server.url("v1"), api_key="sk-client", max_retries=0) as c:
        c.chat.completions.create(
            model="gpt-4o-mini", messages=chat(marker()), extra_headers=headers(ids[0], HOSTILE)
        )
        stream = c.chat.completions.create(
            model="gpt-4o-mini",
            messages=chat(marker()),
            stream=True,
            extra_headers=headers(ids[1], "alice"),
        )
        assert "".join(p.choices[0].delta.content or "" for p in stream if p.choices)
        c.chat.completions.create(
            model="llama3.2", messages=chat(marker()), extra_headers=headers(ids[2], "alice")
        )
    with ollama.Client(host=server.url("ollama"), headers=headers(ids[3], "bob")) as o:
        o.chat(model="llama3.2", messages=chat(marker()))
    cold = headers(ids[4], "bob", **{"x-mock-cold-ms": "1200"})
    with ollama.Client(host=server.url("ollama"), headers=cold) as o:
        o.generate(model="llama3.2", prompt=f"Hi {marker()}")
    failing = headers(ids[5], "bob", **{"x-mock-status": "500"})
    with (
        ollama.Client(host=server.url("ollama"), headers=failing) as o,
        pytest.raises(ollama.ResponseError),
    ):
        o.chat(model="llama3.2", messages=chat(marker()))
    return ids


def money(records: list[dict[str, Any]]) -> str:
    """A cost cell as the dashboard writes it: the priced sum, * when some have no price."""
    known = sum(r["cost_usd"] for r in records if r["cost_usd"] is not None)
    return usd(known) + ("*" if any(r["cost_usd"] is None for r in records) else "")


def test_model_page_and_local_vs_cloud_match_the_records(server: Heliograph) -> None:
    stored = [server.record(rid) for rid in send_traffic(server)]
    assert {r["upstream"] for r in stored} == {"openai", "ollama"}
    local = [r for r in stored if r["upstream"] == "ollama"]
    cloud = [r for r in stored if r["upstream"] == "openai"]
    llama = [r for r in stored if r["model"] == "llama3.2"]
    assert (len(local), len(cloud), len(llama)) == (3, 3, 4)
    assert sum(r["cold_start"] for r in llama) == 1
    assert sum(r["state"] != "ok" for r in llama) == 1
    assert all(r["cost_usd"] == 0 for r in local if r["state"] == "ok")

    with dashboard_login(server.base_url, ADMIN_EMAIL, ADMIN_PASSWORD) as web:
        page = web.get("/models/llama3.2", params={"range": "1h"})
        assert page.status_code == 200, page.text[:500]
        text = page.text
        assert stat(text, "Requests") == str(len(llama))
        assert stat(text, "Cold starts") == "1"
        assert stat(text, "Error rate") == pct(1 / len(llama))
        assert stat(text, "Tokens") == tokens(
            sum((r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0) for r in llama)
        )
        assert stat(text, "Cost") == usd(sum(r["cost_usd"] or 0 for r in llama))
        assert stat(text, "p50 latency") != "—" and stat(text, "Output tok/s p50") != "—"
        served = {row[0]: row for row in table(text, "served-by")}
        # Upstream, Provider, Where, Requests
        assert served["ollama"][2:4] == ["local", "3"]
        assert served["openai"][2:4] == ["cloud", "1"]
        users = {row[0]: row[1] for row in table(text, "top-users")}
        assert users == {"alice": "1", "bob": "3"}
        assert len(table(text, "recent-errors-table")) == 1

        home = web.get("/", params={"range": "1h"}).text
        sides = {row[0]: row for row in table(home, "local-cloud")}
        # Where, Models, Requests, Cost
        assert sides["local"][1:4] == ["1", "3", money(local)]
        assert sides["cloud"][1:4] == ["2", "3", money(cloud)]
        [both] = table(home, "both-ways")
        assert both[:4] == ["llama3.2", "4", "3", "1"]
        assert HOSTILE not in home  # the hostile user id, escaped in the top users

        models = web.get("/models", params={"range": "1h"}).text
        rows = {row[1]: row for row in table(models, "models")}
        assert rows["llama3.2"][2] == "both" and rows["gpt-4o-mini"][2] == "cloud"
        assert rows["llama3.2"][4] == "4" and rows["gpt-4o-mini"][4] == "2"
        assert table(models, "local-cloud") == table(home, "local-cloud")

        compare = web.get(
            "/compare", params=[("range", "1h"), ("model", "llama3.2"), ("model", "gpt-4o-mini")]
        ).text
        figures = {row[0]: row for row in table(compare, "compare")}
        assert figures["llama3.2"][1] == "4" and figures["gpt-4o-mini"][1] == "2"
        assert figures["gpt-4o-mini"][2] == money([r for r in cloud if r["model"] != "llama3.2"])
