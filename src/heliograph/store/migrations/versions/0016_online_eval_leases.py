"""Online evaluation: reasons on record scores, leases on the eval queue, a rule's last run.

A score an online rule stores on a record carries the evaluator's reason beside the number, so
the record page can say why (``request_scores.reason``; scores sent through the API have none).
A queue entry is claimed by one worker with a guarded UPDATE that sets ``lease_owner`` and
``lease_until``; a worker that crashed mid-evaluation lets its lease run out and another
process takes the entry over, so nothing is dropped and two processes never score one entry
at the same time. ``last_run_at`` is when the sampler last looked at a rule (its status), and
the (rule, status) index keeps a rule's status counts off a scan of the whole queue.
Charts of a score over time read ``request_scores`` by (org, name, time): a score is never
older than its record, so a window's scores are an index range from the window's start.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("request_scores") as batch:
        batch.add_column(sa.Column("reason", sa.Text()))
    with op.batch_alter_table("eval_queue") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(80)))
        batch.add_column(sa.Column("lease_until", sa.BigInteger()))
    with op.batch_alter_table("online_eval_rules") as batch:
        batch.add_column(sa.Column("last_run_at", sa.BigInteger()))
    op.create_index("ix_eval_queue_rule_status", "eval_queue", ["rule_id", "status"])
    op.create_index("ix_request_scores_time", "request_scores", ["org_id", "name", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_request_scores_time", table_name="request_scores")
    op.drop_index("ix_eval_queue_rule_status", table_name="eval_queue")
    with op.batch_alter_table("online_eval_rules") as batch:
        batch.drop_column("last_run_at")
    with op.batch_alter_table("eval_queue") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("lease_owner")
    with op.batch_alter_table("request_scores") as batch:
        batch.drop_column("reason")
