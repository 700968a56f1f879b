"""Prompts: named templates, their immutable numbered versions, labels and label history.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "prompts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("org_id", "name", name="uq_prompts_org_name"),
    )
    op.create_table(
        "prompt_versions",
        sa.Column("prompt_id", sa.String(36), sa.ForeignKey("prompts.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("messages", sa.JSON, nullable=False),
        sa.Column("model", sa.String(255)),
        sa.Column("upstream", sa.String(64)),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("variables", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(80)),
    )
    op.create_table(
        "prompt_labels",
        sa.Column("prompt_id", sa.String(36), sa.ForeignKey("prompts.id"), primary_key=True),
        sa.Column("label", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("updated_by", sa.String(80)),
    )
    op.create_table(
        "prompt_label_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("prompt_id", sa.String(36), sa.ForeignKey("prompts.id"), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer),
        sa.Column("to_version", sa.Integer),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("by", sa.String(80)),
    )
    op.create_index("ix_prompt_label_events_prompt", "prompt_label_events", ["prompt_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_prompt_label_events_prompt", "prompt_label_events")
    for name in ("prompt_label_events", "prompt_labels", "prompt_versions", "prompts"):
        op.drop_table(name)
