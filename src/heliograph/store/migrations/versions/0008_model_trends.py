"""Model trends from the rollups: output tokens/s percentiles, prompt speed and cold starts.

"Is my local model getting slower?" needs the p50 and p10 of output tokens/s per hour, so
``rollup_hourly`` gains a tokens/s histogram; all three rollups gain prompt tokens/s sums and
cold-start counts with their load time. Existing hours are rebuilt from the raw rows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TABLES = ("rollup_hourly", "rollup_user_hourly", "rollup_task_hourly")
SUMS: tuple[tuple[str, type[sa.types.TypeEngine[Any]]], ...] = (
    ("ptps_sum", sa.Float),
    ("ptps_n", sa.BigInteger),
    ("cold_n", sa.BigInteger),
    ("cold_load_sum", sa.Float),
)
NTPS = 22  # must match heliograph.store.stats.NTPS


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for name, kind in SUMS:
                batch.add_column(sa.Column(name, kind, nullable=False, server_default="0"))
            if table == "rollup_hourly":
                for i in range(NTPS):
                    column = sa.Column(f"tps{i}", sa.BigInteger, nullable=False, server_default="0")
                    batch.add_column(column)
    from heliograph.store.rollups import rebuild

    rebuild(op.get_bind(), tables=TABLES)


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            if table == "rollup_hourly":
                for i in reversed(range(NTPS)):
                    batch.drop_column(f"tps{i}")
            for name, _ in reversed(SUMS):
                batch.drop_column(name)
