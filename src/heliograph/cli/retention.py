"""``heliograph retention show|run``: the retention policies in force, and a pass on demand.

Reads the store directly, like ``export``: no server and no key. ``run`` is the job process's
pass (``retention.run.Pass``) done now, without waiting for its interval; both may run at the
same time, since every batch deletes by id in its own transaction.
"""

from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import Engine

from heliograph.cli.location import location_options, open_store, settings_for
from heliograph.retention.policy import KINDS, Policy
from heliograph.retention.run import Pass, due, policies, reclaim, summary
from heliograph.store import partitions
from heliograph.store import retention as retention_store


def _days(policy: Policy, kind: str) -> str:
    days = policy.days(kind)
    source = dict(zip(KINDS, policy.sources, strict=True))[kind]
    shown = "never" if days is None else f"{days} days"
    return f"{shown} ({'override' if source == 'organization' else 'default'})"


@click.group()
def retention() -> None:
    """Retention: how long bodies, records and rollups are kept, per organization."""


@retention.command("show")
@location_options
def show(home: Path | None, database_url: str | None) -> None:
    """Each organization's effective policy (server default or its own override) and what a
    pass would delete now."""
    settings = settings_for(home, database_url)
    engine = open_store(settings)
    try:
        now = retention_store.now_ms()
        for org_id, name, policy in policies(engine, settings):
            records, bodies = due(engine, policy, org_id, now)
            click.echo(f"{name} ({org_id})")
            click.echo(f"  bodies:  {_days(policy, 'bodies_days')}")
            click.echo(f"  records: {_days(policy, 'records_days')}")
            click.echo(f"  rollups: {_days(policy, 'rollups_days')}")
            click.echo(f"  due now: {records} records, {bodies} bodies")
        last = retention_store.last_run(engine, "retention")
        _show_partitions(engine)
    finally:
        engine.dispose()
    click.echo(f"Last pass of a job process: {'never' if last is None else _when(last)}")


def _show_partitions(engine: Engine) -> None:
    """PostgreSQL: the months each partitioned table holds, and rows waiting outside them."""
    if not partitions.is_partitioned(engine):
        return
    for table in partitions.PARTITIONED:
        months = partitions.list_partitions(engine, table)
        waiting = sum(partitions.default_months(engine, table).values())
        span = f"{months[0].month} .. {months[-1].month}" if months else "none"
        click.echo(
            f"Partitions of {table}: {len(months)} months ({span}); "
            f"{waiting} rows in the default partition"
        )


def _when(ms: int) -> str:
    import datetime as dt

    at = dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


@retention.command("run")
@click.option("--org", "org", default=None, help="Only this organization (name or id).")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option(
    "--vacuum",
    is_flag=True,
    help="SQLite: after deleting, rewrite the file once with VACUUM so it switches to "
    "incremental auto_vacuum and gives freed space back to the OS. It rewrites the whole "
    "file (needs as much free disk again) and blocks the writer while it runs.",
)
@location_options
def run(
    org: str | None, dry_run: bool, vacuum: bool, home: Path | None, database_url: str | None
) -> None:
    """Apply the retention policies now, in small batches, and print what went."""
    settings = settings_for(home, database_url)
    engine = open_store(settings)
    try:
        if not dry_run:
            made = partitions.maintain(engine, retention_store.now_ms())
            if made.created:
                click.echo(f"Made partitions {', '.join(made.created)} ({made.moved} rows moved)")
        the_pass = Pass(engine, settings)
        results = the_pass.run(only_org=org, dry_run=dry_run)
        if org is not None and not results:
            raise click.ClickException(f"no organization named {org!r}")
        if the_pass.dropped:
            gone = ", ".join(f"{n} {t}" for t, n in sorted(the_pass.months.rows.items()))
            click.echo(f"Dropped whole months {', '.join(the_pass.dropped)}: {gone}")
        for result in results:
            if dry_run:
                line = f"{result.name}: would delete {result.records} records and "
                click.echo(line + f"{result.bodies} bodies")
            else:
                click.echo(f"Deleted {summary(result)}")
        if not dry_run:
            space = reclaim(engine, full=vacuum)
            if space.freed_bytes:
                click.echo(f"Freed {space.freed_bytes / 1_048_576:.1f} MiB ({space.note})")
            if space.advice:
                click.echo(space.advice, err=True)
    finally:
        engine.dispose()
