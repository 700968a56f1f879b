"""Trace context on records: trace id, span id, parent span id, and the record's source.

A client that sends a W3C ``traceparent`` gets its LLM call recorded as a child span of its
own; records ingested over OTLP keep their span's ids and are marked ``source = 'otlp'``.
The partial index serves the trace view, which joins a trace's records by trace id.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(32)))
        batch.add_column(sa.Column("span_id", sa.String(16)))
        batch.add_column(sa.Column("parent_span_id", sa.String(16)))
        batch.add_column(
            sa.Column("source", sa.String(16), nullable=False, server_default="gateway")
        )
    not_null = sa.text("trace_id IS NOT NULL")
    op.create_index(
        "ix_requests_org_trace",
        "requests",
        ["org_id", "trace_id"],
        sqlite_where=not_null,
        postgresql_where=not_null,
    )


def downgrade() -> None:
    op.drop_index("ix_requests_org_trace", table_name="requests")
    with op.batch_alter_table("requests") as batch:
        for name in ("source", "parent_span_id", "span_id", "trace_id"):
            batch.drop_column(name)
