"""Retention: per-organization policies, a lease for the job processes, and the indexes that
let retention find what hangs off old records without scanning.

``webhook_deliveries`` and ``spans`` are deleted by request id and ``spans`` by age; neither
had an index that leads with those columns.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id"), primary_key=True),
        sa.Column("bodies_days", sa.Integer),
        sa.Column("records_days", sa.Integer),
        sa.Column("rollups_days", sa.Integer),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(80)),
    )
    op.create_table(
        "retention_leases",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(80)),
        sa.Column("until_ms", sa.BigInteger, nullable=False),
        sa.Column("last_run_at", sa.BigInteger),
    )
    op.create_index("ix_webhook_deliveries_request", "webhook_deliveries", ["request_id"])
    op.create_index("ix_spans_org_created", "spans", ["org_id", "created_at"])
    op.create_index(
        "ix_spans_request",
        "spans",
        ["request_id"],
        sqlite_where=sa.text("request_id IS NOT NULL"),
        postgresql_where=sa.text("request_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_spans_request", table_name="spans")
    op.drop_index("ix_spans_org_created", table_name="spans")
    op.drop_index("ix_webhook_deliveries_request", table_name="webhook_deliveries")
    op.drop_table("retention_leases")
    op.drop_table("retention_policies")
