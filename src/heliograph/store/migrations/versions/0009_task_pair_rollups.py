"""The task rollup's projections on each pair of its dimensions, for pages at a million rows.

The Dashboard's task share, the Tasks page and each user's top models read pairs of the
task rollup's three dimensions (task and model, task and user, user and model); over 30 days
the three-way table holds several times more rows than any pair. Each pair gets its own lean
table, clustered by its key on SQLite (WITHOUT ROWID: a window is one range read, no lookup
per row); existing hours are rebuilt from the raw rows. On SQLite the per-user rollup, which
the Users page and the Dashboard's top users read in full for a window, is clustered the same
way (copied into a WITHOUT ROWID table of the same columns).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Frozen copies of heliograph.store.rollups' PAIRS, MEASURES and dimension types as of 0009.
PAIRS = {
    "rollup_task_model_hourly": ("task", "model"),
    "rollup_task_user_hourly": ("task", "user_id"),
    "rollup_user_model_hourly": ("user_id", "model"),
}
LENGTHS = {"task": 40, "model": 255, "user_id": 255}
SUMS = (
    *("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens"),
    *("cost_nusd", "unpriced", "latency_sum", "latency_n", "ttft_sum", "ttft_n"),
    *("tps_sum", "tps_n", "ptps_sum", "ptps_n", "cold_n", "cold_load_sum"),
)


def _create(name: str, dims: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("org_id", sa.String(36), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        *(sa.Column(d, sa.String(LENGTHS[d]), primary_key=True) for d in dims),
        *(
            sa.Column(n, sa.Float if n.endswith("_sum") else sa.BigInteger, nullable=False)
            for n in SUMS
        ),
        sa.Column("first_ms", sa.BigInteger, nullable=False),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
        sqlite_with_rowid=False,
    )


def upgrade() -> None:
    for name, dims in PAIRS.items():
        _create(name, dims)
    from heliograph.store.rollups import rebuild

    rebuild(op.get_bind(), tables=tuple(PAIRS))
    if op.get_bind().dialect.name == "postgresql":
        for name in PAIRS:  # planner statistics now, not at autovacuum's next round
            op.execute(f"ANALYZE {name}")
    if op.get_bind().dialect.name == "sqlite":
        op.rename_table("rollup_user_hourly", "rollup_user_hourly_0008")
        _create("rollup_user_hourly", ("user_id",))
        columns = ", ".join(("org_id", "hour", "user_id", *SUMS, "first_ms", "last_ms"))
        op.execute(
            f"INSERT INTO rollup_user_hourly ({columns})"  # noqa: S608 (names above)
            f" SELECT {columns} FROM rollup_user_hourly_0008"
        )
        op.drop_table("rollup_user_hourly_0008")


def downgrade() -> None:
    for name in reversed(PAIRS):
        op.drop_table(name)
