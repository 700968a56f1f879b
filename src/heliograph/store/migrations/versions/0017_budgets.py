"""Budgets: limits per organization, key, user, property or model, enforced by the gateway.

``budget_spend`` holds settled usage per bucket (the writer adds each record's real cost,
tokens or one request); ``budget_holds`` holds what gateway workers reserved and have not
settled yet, each with an expiry so a reservation whose record never arrives frees itself.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("budget_note", sa.String(255)))
    op.create_table(
        "budgets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("window", sa.String(8), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("limit_unit", sa.String(10), nullable=False),
        sa.Column("limit_amount", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(8), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_budgets_org_name"),
    )
    op.create_table(
        "budget_spend",
        sa.Column("budget_id", sa.String(36), primary_key=True),
        sa.Column("bucket", sa.BigInteger(), primary_key=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "budget_holds",
        sa.Column("hold_id", sa.String(120), primary_key=True),
        sa.Column("budget_id", sa.String(36), nullable=False),
        sa.Column("wk", sa.BigInteger(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_budget_holds_budget", "budget_holds", ["budget_id", "wk"])


def downgrade() -> None:
    op.drop_index("ix_budget_holds_budget", table_name="budget_holds")
    op.drop_table("budget_holds")
    op.drop_table("budget_spend")
    op.drop_table("budgets")
    with op.batch_alter_table("requests") as batch:
        batch.drop_column("budget_note")
