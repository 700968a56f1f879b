"""The session index covers only requests that have a session.

Most API traffic carries no session id; indexing those rows cost every insert an index
update that no query uses (a session lookup, ``session_id = ?``, implies NOT NULL).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

NAME = "ix_requests_org_session"
COLUMNS = ["org_id", "session_id", "created_at"]


def upgrade() -> None:
    op.drop_index(NAME, table_name="requests")
    has_session = sa.text("session_id IS NOT NULL")
    op.create_index(
        NAME, "requests", COLUMNS, sqlite_where=has_session, postgresql_where=has_session
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="requests")
    op.create_index(NAME, "requests", COLUMNS)
