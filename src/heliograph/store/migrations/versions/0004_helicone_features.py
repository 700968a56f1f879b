"""Helicone-compatible features: sessions paths, cache, retries, feedback, scores, counters.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def request_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("session_path", sa.String(255)),
        sa.Column("session_name", sa.String(255)),
        sa.Column("cache_hit", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cost_saved_nusd", sa.BigInteger),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("attempts", sa.JSON),
        sa.Column("served_by", sa.String(64)),
        sa.Column("omitted", sa.String(16)),
        sa.Column("model_override", sa.String(255)),
    ]


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for column in request_columns():
            batch.add_column(column)
    op.create_table(
        "request_feedback",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("rating", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_request_feedback_org", "request_feedback", ["org_id", "rating"])
    op.create_table(
        "request_scores",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_request_scores_lookup", "request_scores", ["org_id", "name", "value"])
    op.create_table(
        "response_cache",
        sa.Column("cache_key", sa.String(64), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("source_request_id", sa.String(36), nullable=False),
    )
    op.create_index("ix_response_cache_expiry", "response_cache", ["expires_at"])
    op.create_table(
        "rate_counters",
        sa.Column("counter_key", sa.String(255), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_rate_counters_expiry", "rate_counters", ["expires_at"])


def downgrade() -> None:
    op.drop_table("rate_counters")
    op.drop_table("response_cache")
    op.drop_table("request_scores")
    op.drop_table("request_feedback")
    with op.batch_alter_table("requests") as batch:
        for column in reversed(request_columns()):
            batch.drop_column(column.name)
