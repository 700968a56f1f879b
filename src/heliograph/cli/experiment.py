"""``heliograph experiment run``: an experiment on a running server, gated for CI.

It creates the experiment over the API, follows its progress (a bar on stderr), then prints
a summary per variant (mean score, pass rate, cost, p50/p95 latency, errors) from
``GET /api/v1/experiments/<id>/results`` and exits with a code a pipeline can act on:

- 0: finished and every variant's mean score is at least ``--min-score`` (when given);
- 1: a threshold failed (a variant's mean score under ``--min-score``, or nothing scored);
- 2: a usage error, an API error, or an experiment that failed or was cancelled;
- 3: stopped by its cost cap.

A variant's mean score is the mean of its evaluators' mean scores (values as scored: 0-1 for
the deterministic evaluators and for pass/fail, 1 and 0); evaluator errors are counted apart.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click
import orjson

from heliograph.cli.api_client import Api, ApiFailure, server_options

EXIT_OK, EXIT_THRESHOLD, EXIT_ERROR, EXIT_CAPPED = 0, 1, 2, 3
POLL_S = 0.5
BAR = 30


@click.group()
def experiment() -> None:
    """Run experiments on a running server (variants x a dataset, scored by evaluators)."""


def evaluator_value(text: str) -> Any:
    """An evaluator as the API takes it; ``json-schema:<file>`` reads the file here."""
    if text.startswith("json-schema:"):
        path = Path(text.removeprefix("json-schema:"))
        try:
            schema = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise click.UsageError(f"json-schema: cannot read {path}: {exc}") from exc
        return {"name": "json-schema", "kind": "json_schema", "config": {"schema": schema}}
    return text


def _bar(exp: dict[str, Any]) -> str:
    total = exp["cells_total"] or 1
    finished = exp["cells_done"] + exp["cells_failed"]
    filled = int(BAR * finished / total)
    spent = exp["spent_usd"] or 0.0
    return (
        f"[{'#' * filled}{'.' * (BAR - filled)}] {finished}/{exp['cells_total']} cells, "
        f"{exp['cells_failed']} errors, ${spent:.6f} spent ({exp['status']})"
    )


def follow(api: Api, exp_id: str) -> dict[str, Any]:
    """Poll until the experiment ends, drawing the bar on stderr; its last state."""
    tty = sys.stderr.isatty()
    last = ""
    while True:
        exp: dict[str, Any] = api.call("GET", f"/api/v1/experiments/{exp_id}")
        line = _bar(exp)
        if line != last:
            click.echo(("\r" + line) if tty else line, err=True, nl=not tty)
            last = line
        if exp["status"] not in ("queued", "running"):
            if tty:
                click.echo("", err=True)
            return exp
        time.sleep(POLL_S)


def variant_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One summary row per variant from the results document."""
    rows = []
    for variant in results.get("variants", []):
        s = variant.get("summary") or {}
        evaluators = s.get("evaluators") or {}
        means = [e["mean"] for e in evaluators.values() if e.get("mean") is not None]
        passed = sum(e.get("passed") or 0 for e in evaluators.values())
        judged = sum(
            round((e.get("passed") or 0) / e["pass_rate"]) if e.get("pass_rate") else 0
            for e in evaluators.values()
        )
        judged = max(judged, passed)
        rows.append(
            {
                "variant": variant["name"],
                "mean_score": sum(means) / len(means) if means else None,
                "pass_rate": passed / judged if judged else None,
                "cost_usd": (s.get("cost_nusd") or 0) / 1e9,
                "p50_latency_ms": s.get("p50_latency_ms"),
                "p95_latency_ms": s.get("p95_latency_ms"),
                "errors": (s.get("errors") or 0)
                + sum(e.get("errors") or 0 for e in evaluators.values()),
                "cells": s.get("cells"),
            }
        )
    return rows


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    head = f"{'VARIANT':40}  {'MEAN':>6}  {'PASS':>6}  {'COST USD':>12}  {'P50 MS':>8}  "
    head += f"{'P95 MS':>8}  {'ERRORS':>6}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{r['variant'][:40]:40}  {_fmt(r['mean_score'], '6.3f')}  "
            f"{_fmt(r['pass_rate'], '6.1%')}  {r['cost_usd']:12.6f}  "
            f"{_fmt(r['p50_latency_ms'], '8.0f')}  {_fmt(r['p95_latency_ms'], '8.0f')}  "
            f"{r['errors']:6d}"
        )
    return "\n".join(lines)


def verdict(exp: dict[str, Any], rows: list[dict[str, Any]], min_score: float | None) -> int:
    if exp["status"] == "stopped" and exp.get("stop_reason") == "cost cap reached":
        return EXIT_CAPPED
    if exp["status"] != "completed":
        return EXIT_ERROR
    if min_score is None:
        return EXIT_OK
    ok = bool(rows) and all(
        r["mean_score"] is not None and r["mean_score"] >= min_score for r in rows
    )
    return EXIT_OK if ok else EXIT_THRESHOLD


@experiment.command("run")
@click.option("--dataset", required=True, help="The dataset's name.")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    required=True,
    help="prompt:<name>@<label>, prompt:<name>:<version> or model:<upstream>/<model> "
    "(repeat for each variant).",
)
@click.option(
    "--evaluator",
    "evaluators",
    multiple=True,
    help="exact, contains:<text>, regex:<pattern>, json, json-schema:<file>, "
    "similarity:<min>, judge:<prompt>@<label>, or a saved evaluator's name (repeatable).",
)
@click.option("--name", default=None, help="The experiment's name [the dataset's and a time].")
@click.option("--min-score", type=float, default=None, help="Fail (exit 1) under this mean.")
@click.option("--cost-cap", type=float, default=None, help="Stop when this many USD are spent.")
@click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option("--dry-run", is_flag=True, help="Print the cost estimate and stop.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@server_options
def run(
    dataset: str,
    variants: tuple[str, ...],
    evaluators: tuple[str, ...],
    name: str | None,
    min_score: float | None,
    cost_cap: float | None,
    concurrency: int,
    dry_run: bool,
    as_json: bool,
    url: str | None,
    key: str | None,
) -> None:
    """Run VARIANTs over a dataset, score them, print a summary per variant.

    Exit codes: 0 passed, 1 a threshold failed, 2 usage or API error (or the experiment
    failed or was cancelled), 3 stopped by the cost cap."""
    body: dict[str, Any] = {
        "name": name or f"{dataset} {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "dataset": dataset,
        "variants": list(variants),
        "evaluators": [evaluator_value(e) for e in evaluators],
        "concurrency": concurrency,
        "dry_run": dry_run,
    }
    if cost_cap is not None:
        body["cost_cap_usd"] = cost_cap
    try:
        api = Api(url, key)
        created = api.call("POST", "/api/v1/experiments", body)
        if dry_run:
            click.echo(orjson.dumps(created["estimate"], option=orjson.OPT_INDENT_2).decode())
            return
        click.echo(
            f"Experiment {created['id']}: {created['cells_total']} cells, estimated "
            f"${created['estimated_cost_usd'] or 0:.6f}",
            err=True,
        )
        exp = follow(api, created["id"])
        results = api.call("GET", f"/api/v1/experiments/{created['id']}/results")
    except ApiFailure as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_ERROR)
    rows = variant_rows(results)
    code = verdict(exp, rows, min_score)
    if as_json:
        out = {"experiment": exp, "variants": rows, "min_score": min_score, "exit_code": code}
        click.echo(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
    else:
        click.echo(table(rows))
        if exp.get("stop_reason"):
            click.echo(f"Stopped: {exp['stop_reason']}")
        if code == EXIT_THRESHOLD:
            click.echo(f"FAILED: a variant's mean score is under {min_score}")
    sys.exit(code)
