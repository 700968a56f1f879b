"""Initial schema: organizations, API keys, requests, bodies, properties.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organizations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked_at", sa.BigInteger),
        sa.Column("last_used_at", sa.BigInteger),
    )
    op.create_table(
        "requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), nullable=False),
        sa.Column("key_id", sa.String(36)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("upstream", sa.String(64), nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255)),
        sa.Column("response_model", sa.String(255)),
        sa.Column("stream", sa.Boolean, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("ttft_ms", sa.Float),
        sa.Column("output_tokens_per_s", sa.Float),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("completion_tokens", sa.Integer),
        sa.Column("total_tokens", sa.Integer),
        sa.Column("cached_tokens", sa.Integer),
        sa.Column("reasoning_tokens", sa.Integer),
        sa.Column("cost_nusd", sa.BigInteger),
        sa.Column("user_id", sa.String(255)),
        sa.Column("session_id", sa.String(255)),
        sa.Column("properties", sa.JSON),
    )
    op.create_index("ix_requests_org_created", "requests", ["org_id", "created_at", "id"])
    op.create_index("ix_requests_org_model", "requests", ["org_id", "model", "created_at"])
    op.create_index("ix_requests_org_user", "requests", ["org_id", "user_id", "created_at"])
    op.create_index("ix_requests_org_session", "requests", ["org_id", "session_id", "created_at"])
    op.create_table(
        "request_bodies",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("encoding", sa.String(8), nullable=False),
        sa.Column("request_body", sa.LargeBinary),
        sa.Column("response_body", sa.LargeBinary),
        sa.Column("request_headers", sa.JSON),
        sa.Column("truncated", sa.Boolean, nullable=False),
    )
    op.create_table(
        "request_properties",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("org_id", sa.String(36), nullable=False),
    )
    op.create_index(
        "ix_request_properties_lookup", "request_properties", ["org_id", "name", "value"]
    )


def downgrade() -> None:
    op.drop_table("request_properties")
    op.drop_table("request_bodies")
    op.drop_table("requests")
    op.drop_table("api_keys")
    op.drop_table("organizations")
