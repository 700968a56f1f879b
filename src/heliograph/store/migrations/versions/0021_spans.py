"""Spans ingested over OTLP: the trace context around LLM calls (agents, tools, retrieval).

LLM spans become records (``requests`` with ``source = 'otlp'``); every span, LLM or not, is
kept here with its parent so the trace view can draw the tree, and gateway records join it by
trace id. The primary key makes a re-sent batch (OTLP exporters retry) idempotent.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "spans",
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id"), primary_key=True),
        sa.Column("trace_id", sa.String(32), primary_key=True),
        sa.Column("span_id", sa.String(16), primary_key=True),
        sa.Column("parent_span_id", sa.String(16)),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("service", sa.String(255)),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("status_message", sa.Text),
        sa.Column("attributes", sa.JSON),
        sa.Column("request_id", sa.String(36)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_spans_org_start", "spans", ["org_id", "start_ns"])


def downgrade() -> None:
    op.drop_index("ix_spans_org_start", table_name="spans")
    op.drop_table("spans")
