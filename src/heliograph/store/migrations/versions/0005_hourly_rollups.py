"""Hourly rollups for the dashboards: per model/provider/upstream, and per user.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None
NBUCKETS = 24  # must match heliograph.store.analytics.NBUCKETS


def measures(histograms: bool = True) -> list[sa.Column[Any]]:
    cols = [
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False),
        sa.Column("cached_tokens", sa.BigInteger, nullable=False),
        sa.Column("cost_nusd", sa.BigInteger, nullable=False),
        sa.Column("unpriced", sa.BigInteger, nullable=False),
        sa.Column("latency_sum", sa.Float, nullable=False),
        sa.Column("latency_n", sa.BigInteger, nullable=False),
        sa.Column("ttft_sum", sa.Float, nullable=False),
        sa.Column("ttft_n", sa.BigInteger, nullable=False),
        sa.Column("tps_sum", sa.Float, nullable=False),
        sa.Column("tps_n", sa.BigInteger, nullable=False),
        sa.Column("first_ms", sa.BigInteger, nullable=False),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
    ]
    if histograms:
        cols += [sa.Column(f"lat{i}", sa.BigInteger, nullable=False) for i in range(NBUCKETS)]
        cols += [sa.Column(f"ttft{i}", sa.BigInteger, nullable=False) for i in range(NBUCKETS)]
    return cols


def upgrade() -> None:
    op.create_table(
        "rollup_hourly",
        sa.Column("org_id", sa.String(36), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("provider", sa.String(64), primary_key=True),
        sa.Column("upstream", sa.String(64), primary_key=True),
        sa.Column("model", sa.String(255), primary_key=True),
        *measures(),
    )
    op.create_table(
        "rollup_user_hourly",
        sa.Column("org_id", sa.String(36), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        *measures(histograms=False),
    )
    # Roll up what is already stored (same SQL the cost recompute uses).
    from heliograph.store.rollups import rebuild

    rebuild(op.get_bind(), tables=("rollup_hourly", "rollup_user_hourly"))


def downgrade() -> None:
    op.drop_table("rollup_user_hourly")
    op.drop_table("rollup_hourly")
