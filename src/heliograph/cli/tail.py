"""``heliograph tail``: a live terminal view of requests as they are recorded.

It takes the same filter options as ``export`` (``cli.filter_options``: the API's parameters,
as options), so ``tail --user-id alice --min-latency 1000`` follows just those.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from heliograph.cli.filter_options import filter_options, where
from heliograph.cli.location import location_options, open_store, settings_for
from heliograph.store.requests import recent_requests

WINDOW_MS = 15 * 60 * 1000
COLORS = {"ok": "green", "error": "red", "cancelled": "yellow", "interrupted": "magenta"}


def format_line(row: dict[str, Any]) -> str:
    """One request as a fixed-width line: time, model, user, status, latency, tokens, cost."""
    when = row["created_at"][11:23]
    model = (row["model"] or row["endpoint"] or "-")[:28]
    user = (row["user_id"] or "-")[:16]
    status = f"{row['status'] or '-'} {row['state']}"
    latency = f"{row['latency_ms']:.0f}ms" if row["latency_ms"] is not None else "-"
    tokens = (
        f"{row['prompt_tokens'] or 0}→{row['completion_tokens'] or 0}"
        if row["total_tokens"] is not None
        else "-"
    )
    cost = f"${row['cost_usd']:.6f}" if row["cost_usd"] is not None else ""
    return f"{when}  {model:28}  {user:16}  {status:16}  {latency:>9}  {tokens:>13}  {cost}"


@click.command()
@click.option("--interval", type=float, default=0.5, show_default=True, help="Poll interval.")
@click.option("--last", type=int, default=10, show_default=True, help="Show the last N first.")
@click.option("--once", is_flag=True, help="Print what is there and exit.")
@filter_options
@location_options
def tail(
    interval: float,
    last: int,
    once: bool,
    home: Path | None,
    database_url: str | None,
    **filters: Any,
) -> None:
    """Follow requests as they are recorded (reads the store directly)."""
    matching = where(filters)
    engine = open_store(settings_for(home, database_url))
    seen: dict[str, int] = {}
    header = f"{'TIME':12}  {'MODEL':28}  {'USER':16}  {'STATUS':16}  {'LATENCY':>9}  {'TOKENS':>13}  COST"
    click.echo(click.style(header, bold=True))
    first = True
    try:
        while True:
            now = int(time.time() * 1000)
            rows = recent_requests(engine, now - WINDOW_MS, limit=1000, where=matching)
            fresh = [r for r in rows if r["id"] not in seen]
            if first:
                fresh = fresh[:last]
                seen.update({r["id"]: now for r in rows})
                first = False
            for row in sorted(fresh, key=lambda r: r["created_at"]):
                seen[row["id"]] = now
                click.echo(click.style(format_line(row), fg=COLORS.get(row["state"])))
            if once:
                return
            cutoff = now - 2 * WINDOW_MS
            seen = {k: v for k, v in seen.items() if v >= cutoff}
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        engine.dispose()
