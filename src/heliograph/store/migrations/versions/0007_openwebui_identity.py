"""Open WebUI natively: user name, email, role and groups, identity, task and message.

Records gain who asked (as Open WebUI said, and whether it was signed), the background task
that made the call and the answer it belongs to; ``request_groups`` makes groups filterable,
``end_users`` remembers each user's latest name, email, role and groups, and
``rollup_task_hourly`` keeps what tasks cost per model and user fast at any size.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = (
    ("user_name", sa.String(255)),
    ("user_email", sa.String(320)),
    ("user_role", sa.String(32)),
    ("user_groups", sa.JSON()),
    ("identity", sa.String(12)),
    ("task", sa.String(40)),
    ("message_id", sa.String(255)),
)
SUMS = (
    "requests",
    "errors",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cost_nusd",
    "unpriced",
    "latency_sum",
    "latency_n",
    "ttft_sum",
    "ttft_n",
    "tps_sum",
    "tps_n",
    "first_ms",
    "last_ms",
)


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind))
    op.create_table(
        "request_groups",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("org_id", sa.String(36), nullable=False),
    )
    op.create_index("ix_request_groups_lookup", "request_groups", ["org_id", "name"])
    op.create_table(
        "end_users",
        sa.Column("org_id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        sa.Column("name", sa.String(255)),
        sa.Column("email", sa.String(320)),
        sa.Column("role", sa.String(32)),
        sa.Column("groups", sa.JSON()),
        sa.Column("group_ids", sa.JSON()),
        sa.Column("identity", sa.String(12)),
        sa.Column("first_seen", sa.BigInteger, nullable=False),
        sa.Column("last_seen", sa.BigInteger, nullable=False),
    )
    measures = [
        sa.Column(n, sa.Float if n.endswith("_sum") else sa.BigInteger, nullable=False)
        for n in SUMS
    ]
    op.create_table(
        "rollup_task_hourly",
        sa.Column("org_id", sa.String(36), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("task", sa.String(40), primary_key=True),
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("user_id", sa.String(255), primary_key=True),
        *measures,
    )
    from heliograph.store.rollups import rebuild

    rebuild(op.get_bind(), tables=("rollup_task_hourly",))


def downgrade() -> None:
    op.drop_table("rollup_task_hourly")
    op.drop_table("end_users")
    op.drop_index("ix_request_groups_lookup", table_name="request_groups")
    op.drop_table("request_groups")
    with op.batch_alter_table("requests") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
