"""Records for the model pages' tests: a local and a cloud llama3.2, a dear cloud model, and a
hostile model name and user id, written straight into a store (so the figures are known);
and reading figures and tables back from a page's HTML."""

from __future__ import annotations

import html
import re
import time
from typing import Any

from heliograph.store.rollups import HOUR_MS
from query_support import row

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
H0 = (int(time.time() * 1000) - 3 * HOUR_MS) // HOUR_MS * HOUR_MS


def upstreams(mock_url: str) -> dict[str, Any]:
    return {
        "openai": {"url": mock_url, "local": False},  # the mock listens on loopback
        "groq": {"url": "https://api.groq.com/openai/v1", "local": False},
        "gpu-box": {"url": "http://10.1.2.3:8000/v1", "protocol": "openai", "provider": "openai"},
    }


def records(org_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(**kw: Any) -> None:
        out.append(row(org_id, len(out), **kw))

    for i in range(4):  # llama3.2 on the local Ollama: 800 ms, 20 tok/s, one cold start
        add(
            created_at=H0 + i * 600_000,
            provider="ollama",
            upstream="ollama",
            model="llama3.2",
            latency_ms=800.0,
            ttft_ms=200.0,
            output_tokens_per_s=20.0,
            load_ms=3000.0 if i == 0 else 10.0,
            prompt_tokens=10,
            completion_tokens=30,
            cost_known=True,
            cost_nusd=0,
            user_id="alice",
        )
    for i in range(2):  # the same model from a cloud host, priced
        add(
            created_at=H0 + HOUR_MS + i * 60_000,
            provider="groq",
            upstream="groq",
            model="llama3.2",
            latency_ms=150.0,
            output_tokens_per_s=300.0,
            prompt_tokens=10,
            completion_tokens=30,
            cost_known=True,
            cost_nusd=2_000_000,
            user_id="bob",
        )
    for i in range(3):  # gpt-4o: slow and dear; one failed
        add(
            created_at=H0 + 2 * HOUR_MS + i * 60_000,
            provider="openai",
            upstream="openai",
            model="gpt-4o",
            latency_ms=4500.0,
            prompt_tokens=100,
            completion_tokens=50,
            cost_known=True,
            cost_nusd=50_000_000,
            user_id=IMG,
            state="error" if i == 2 else "ok",
            status=500 if i == 2 else 200,
        )
    # a local upstream on a private address (no _LOCAL set): hostile model name
    add(
        created_at=H0 + 30 * 60_000,
        provider="openai",
        upstream="gpu-box",
        model=SCRIPT,
        latency_ms=900.0,
        user_id=SCRIPT,
    )
    return out


def stat(page: str, label: str) -> str:
    """The value of the stat box labelled ``label`` on a page."""
    match = re.search(
        rf'<span class="label">{re.escape(label)}</span>\s*<span class="value">([^<]*)</span>', page
    )
    assert match, f"no {label!r} figure on the page"
    return html.unescape(match.group(1))


def table(page: str, table_id: str) -> list[list[str]]:
    """The text of each body row's cells of the table with ``table_id``."""
    match = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', page, re.S)
    assert match, f"no table #{table_id}"
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", match.group(1), re.S)
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(
            r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)]
        for r in rows
    ]  # fmt: skip
