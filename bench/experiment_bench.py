"""The experiment benchmark: 1,000 items x 3 variants at concurrency 32 through a real server.

Issue 16's target: such an experiment, with deterministic evaluators, against the benchmark's
mock upstream (``fastmock.py``), completes in at most 60 s on the 2-core machine. It starts
fastmock and ``heliograph serve`` (a fresh home; the job process, the writer and the gateway
as users run them), imports the dataset with ``heliograph datasets import``, creates a prompt
with two versions over the API, then times ``POST /api/v1/experiments`` to ``completed``:
every cell a gateway call, recorded by the writer, read back from the store and scored.

Usage: ``python bench/experiment_bench.py [--items 1000] [--concurrency 32]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import processes as pr
from run import create_key, free_port

TARGET_S = 60.0


def call(base: str, key: str, method: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {key}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def setup(base: str, admin: str, env: dict[str, str], work: Path, items: int) -> None:
    lines = [
        json.dumps(
            {"inputs": {"question": f"question {i}"}, "expected": "Hi! How can I help you today?"}
        )
        for i in range(items)
    ]
    path = work / "items.jsonl"
    path.write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "heliograph", "datasets", "import", "bench", str(path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise pr.StartupError(f"datasets import failed:\n{done.stdout}{done.stderr}")
    call(base, admin, "POST", "/api/v1/prompts", {"name": "bench"})
    for text in ("Answer: {{question}}", "Answer briefly: {{question}}"):
        version = {
            "messages": [{"role": "user", "content": text}],
            "model": "gpt-4o-mini",
            "upstream": "fast",
        }
        call(base, admin, "POST", "/api/v1/prompts/bench/versions", version)
    call(base, admin, "PUT", "/api/v1/prompts/bench/labels/staging", {"version": 1})
    call(base, admin, "PUT", "/api/v1/prompts/bench/labels/production", {"version": 2})


def run_experiment(base: str, admin: str, concurrency: int) -> dict[str, Any]:
    body = {
        "name": "bench",
        "dataset": "bench",
        "variants": ["prompt:bench@staging", "prompt:bench@production", "model:fast/gpt-4o-mini"],
        "evaluators": ["exact", "contains:help", "similarity:0.5"],
        "concurrency": concurrency,
    }
    started = time.monotonic()
    exp = call(base, admin, "POST", "/api/v1/experiments", body)
    created = time.monotonic() - started
    while exp["status"] in ("queued", "running"):
        time.sleep(0.2)
        exp = call(base, admin, "GET", f"/api/v1/experiments/{exp['id']}")
    exp["elapsed_s"] = time.monotonic() - started
    exp["create_s"] = created
    return exp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    procs = pr.Processes()
    with tempfile.TemporaryDirectory(prefix="hg-exp-bench-") as tmp:
        work = Path(tmp)
        try:
            _mock, mock_port = pr.start_mock(procs, work)
            home = work / "home"
            home.mkdir()
            env = {
                **os.environ,
                "HELIOGRAPH_HOME": str(home),
                "HELIOGRAPH_UPSTREAM_FAST_URL": f"http://127.0.0.1:{mock_port}/v1",
                "HELIOGRAPH_UPSTREAM_FAST_PROVIDER": "openai",
            }
            port = free_port()
            cmd = [sys.executable, "-m", "heliograph", "serve", "--port", str(port)]
            server = procs.start("gateway", cmd, work / "gateway.log", env)
            base = f"http://127.0.0.1:{port}"
            pr.wait_http_ok(f"{base}/health", 30.0, server)
            admin = create_key(env, "admin")
            setup(base, admin, env, work, args.items)
            exp = run_experiment(base, admin, args.concurrency)
            cells = exp["cells_done"] + exp["cells_failed"]
            print(
                f"experiment: {args.items} items x 3 variants = {exp['cells_total']} cells, "
                f"concurrency {args.concurrency}, deterministic evaluators x3"
            )
            print(
                f"  {exp['status']} in {exp['elapsed_s']:.1f} s (creation {exp['create_s']:.2f} s), "
                f"{cells / exp['elapsed_s']:.0f} cells/s, {exp['cells_failed']} errors, "
                f"spent ${exp['spent_usd']:.4f} (estimated ${exp['estimated_cost_usd']:.4f})"
            )
            ok = exp["status"] == "completed" and exp["elapsed_s"] <= TARGET_S
            print(f"  target <= {TARGET_S:.0f} s: {'PASS' if ok else 'FAIL'}")
            if not ok:
                print(server.log_tail(30))
                sys.exit(1)
        finally:
            procs.stop_all()


if __name__ == "__main__":
    main()
