"""Provider metrics (cache writes, prompt speed, load time, estimated tokens) and cost parts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("protocol", sa.String(16)),
        sa.Column("cache_write_tokens", sa.Integer),
        sa.Column("prompt_tokens_per_s", sa.Float),
        sa.Column("load_ms", sa.Float),
        sa.Column("tokens_estimated", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cost_known", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("cost_input_nusd", sa.BigInteger),
        sa.Column("cost_output_nusd", sa.BigInteger),
        sa.Column("cost_cache_read_nusd", sa.BigInteger),
        sa.Column("cost_cache_write_nusd", sa.BigInteger),
        sa.Column("cost_source", sa.String(16)),
        sa.Column("price_ref", sa.String(255)),
    ]


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for column in columns():
            batch.add_column(column)
    op.execute("UPDATE requests SET protocol = 'openai' WHERE protocol IS NULL")
    op.create_index("ix_requests_org_provider", "requests", ["org_id", "provider", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_requests_org_provider", "requests")
    with op.batch_alter_table("requests") as batch:
        for column in reversed(columns()):
            batch.drop_column(column.name)
