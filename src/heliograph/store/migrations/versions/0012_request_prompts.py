"""Records name the managed prompt a request used: name, version, label and inputs.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COLUMNS = (
    ("prompt_name", sa.String(100)),
    ("prompt_version", sa.Integer()),
    ("prompt_label", sa.String(100)),
    ("prompt_inputs", sa.JSON()),
)


def upgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for name, kind in COLUMNS:
            batch.add_column(sa.Column(name, kind))


def downgrade() -> None:
    with op.batch_alter_table("requests") as batch:
        for name, _ in reversed(COLUMNS):
            batch.drop_column(name)
