"""The prompt benchmark: what rendering a managed prompt adds to a request.

Issue 15's target: a request whose body names a prompt (``prompt_id`` + ``inputs``, rendered
by the gateway from its in-memory prompt cache) adds at most 0.1 ms at p50 over a plain request
at concurrency 1, and keeps throughput at concurrency 32 within 10 % of plain requests.

Both kinds go through the same gateway to the same mock, so the difference is the rendering
alone. The figures are small next to run-to-run noise, so plain and prompt runs alternate
(``ROUNDS`` each) and the medians are compared: a drift of the machine during the run then
affects both sides alike.
"""

from __future__ import annotations

import json
import statistics
import urllib.request
from typing import Any

import wrk_runner as wr
from suites import Config, Target, heading, ms, settle

MAX_ADDED_P50_MS = 0.1
MAX_RPS_LOSS = 0.10
ROUNDS = 3
PROMPT = "bench"
# The plain body and what the prompt renders to are the same request, so the upstream's work
# and the response are identical on both sides.
PROMPT_BODY = json.dumps({"prompt_id": PROMPT, "inputs": {"greeting": "hi"}}).encode()
VERSION = {
    "messages": [{"role": "user", "content": "Say {{greeting}}"}],
    "model": "gpt-4o-mini",
    "message": "benchmark version",
}


def _call(method: str, url: str, key: str, body: dict[str, Any] | None) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer: dict[str, Any] = json.loads(resp.read() or b"{}")
        return answer


def create_prompt(base: str, admin_key: str) -> None:
    """The benchmark's prompt, version 1 labelled production, through the prompts API."""
    api = f"{base}/api/v1/prompts"
    _call("POST", api, admin_key, {"name": PROMPT, "description": "benchmark"})
    number = _call("POST", f"{api}/{PROMPT}/versions", admin_key, VERSION)["version"]
    _call("PUT", f"{api}/{PROMPT}/labels/production", admin_key, {"version": number})


def bench_prompt(target: Target, cfg: Config) -> dict[str, Any]:
    url = target.proxied_url
    if url is None or not target.prompt_ready:
        print("  skipped: needs a gateway with the benchmark prompt (an admin key to create it)")
        return {"skipped": True}
    heading(f"Prompt rendering vs plain ({ROUNDS} alternating rounds each)")
    # The prompt cache picks up the new label on its next refresh: wait until it renders.
    wr.run(url, connections=1, duration_s=cfg.warmup_s, body=PROMPT_BODY)
    data: dict[str, Any] = {}
    c1 = _alternate(target, cfg, url, 1, cfg.latency_s)
    plain_p50 = statistics.median(r.p50_ms for r in c1["plain"])
    prompt_p50 = statistics.median(r.p50_ms for r in c1["prompt"])
    added = prompt_p50 - plain_p50
    print(f"  c=1   median p50: plain {ms(plain_p50)}, prompt {ms(prompt_p50)}")
    c = cfg.connections
    cn = _alternate(target, cfg, url, c, cfg.throughput_s)
    plain_rps = statistics.median(r.rps for r in cn["plain"])
    prompt_rps = statistics.median(r.rps for r in cn["prompt"])
    loss = 1 - prompt_rps / plain_rps if plain_rps else 1.0
    print(f"  c={c}  median req/s: plain {plain_rps:,.0f}, prompt {prompt_rps:,.0f}")
    errors = sum(r.errors for runs in (*c1.values(), *cn.values()) for r in runs)
    target.check(
        "prompt",
        "added p50 at c=1",
        ms(added),
        f"<= {ms(MAX_ADDED_P50_MS)}",
        added <= MAX_ADDED_P50_MS,
    )
    target.check(
        "prompt",
        f"req/s lost at c={c}",
        f"{loss:.1%}",
        f"<= {MAX_RPS_LOSS:.0%}",
        loss <= MAX_RPS_LOSS,
    )
    target.check("prompt", "non-2xx + socket errors", str(errors), "0", errors == 0)
    for key, runs in (("c1", c1), (f"c{c}", cn)):
        data[key] = {side: [r.to_json() for r in rs] for side, rs in runs.items()}
    data.update(
        plain_p50_ms=plain_p50,
        prompt_p50_ms=prompt_p50,
        added_p50_ms=added,
        plain_rps=plain_rps,
        prompt_rps=prompt_rps,
        rps_loss=loss,
    )
    return data


def _alternate(
    target: Target, cfg: Config, url: str, connections: int, seconds: float
) -> dict[str, list[wr.WrkResult]]:
    """``ROUNDS`` runs of each kind, alternating, each after the gateway went idle."""
    runs: dict[str, list[wr.WrkResult]] = {"plain": [], "prompt": []}
    for _ in range(ROUNDS):
        for side, body in (("plain", None), ("prompt", PROMPT_BODY)):
            settle(target, cfg)
            wr.run(url, connections=connections, duration_s=cfg.warmup_s, body=body)
            r = wr.run(url, connections=connections, duration_s=seconds, body=body)
            runs[side].append(r)
            print(
                f"  c={connections:<3} {side:6} p50 {ms(r.p50_ms)}  p99 {ms(r.p99_ms)}"
                f"  {r.rps:,.0f} req/s  errors {r.errors}"
            )
    return runs
