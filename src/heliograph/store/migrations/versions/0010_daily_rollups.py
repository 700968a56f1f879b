"""Daily twins of the lean rollups, so a 30-day page reads days, not hours.

The Users page, the Dashboard's top users, the Tasks page and each user's top models sum a
lean rollup (per user, or per pair of task, model and user) over the whole window. At a
million requests in 30 days those are tens of thousands of rows per hour-keyed table, but a
few thousand per day. Each lean table gets a daily twin (the same columns, ``hour`` holding
the UTC day's first hour), clustered by its key on SQLite, filled from its hourly table.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# Frozen copies of heliograph.store.rollups' daily tables and measures as of 0010.
DAILY = {
    "rollup_user_daily": ("user_id",),
    "rollup_task_model_daily": ("task", "model"),
    "rollup_task_user_daily": ("task", "user_id"),
    "rollup_user_model_daily": ("user_id", "model"),
}
LENGTHS = {"task": 40, "model": 255, "user_id": 255}
SUMS = (
    *("requests", "errors", "prompt_tokens", "completion_tokens", "cached_tokens"),
    *("cost_nusd", "unpriced", "latency_sum", "latency_n", "ttft_sum", "ttft_n"),
    *("tps_sum", "tps_n", "ptps_sum", "ptps_n", "cold_n", "cold_load_sum"),
)


def upgrade() -> None:
    for name, dims in DAILY.items():
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
    from heliograph.store.rollups import rebuild

    rebuild(op.get_bind(), tables=tuple(DAILY))  # from the hourly tables: no raw row is read
    if op.get_bind().dialect.name == "postgresql":
        for name in DAILY:
            op.execute(f"ANALYZE {name}")


def downgrade() -> None:
    for name in reversed(DAILY):
        op.drop_table(name)
