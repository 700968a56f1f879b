"""An index for a prompt's records: the prompt page's metrics per version.

The prompt page reads every record of one prompt in its window (``prompt_name = ? AND
created_at`` in a range), grouped by version, and the prompt list the last day of each
prompt (``prompt_name IN (...)``). ``(org_id, created_at)`` would read every record of the
window to keep the few that named a prompt; this index reads only those. The time comes
before the version: with the version second, SQLite's planner prefers ``(org_id,
created_at)`` (two equalities then a gap, against one equality and a range), while this
order is two equalities and a range, and still carries the version for the grouping. Most
records name no prompt, so the index is partial (both dialects), and inserts of ordinary
traffic pay nothing for it.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

NAME = "ix_requests_org_prompt"
COLUMNS = ["org_id", "prompt_name", "created_at", "prompt_version"]


def upgrade() -> None:
    named = sa.text("prompt_name IS NOT NULL")
    op.create_index(NAME, "requests", COLUMNS, sqlite_where=named, postgresql_where=named)


def downgrade() -> None:
    op.drop_index(NAME, table_name="requests")
