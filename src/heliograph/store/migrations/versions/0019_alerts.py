"""Alerts: rules over the rollups, notification channels, their history and an outbox.

A rule (``alert_rules``) holds its definition and its state (ok, firing, resolved); a
transition is one guarded UPDATE of its ``version`` in the transaction that stores the event
(``alert_events``, the history page) and queues one notification per channel
(``alert_notifications``), so evaluating twice, or on two replicas, notifies once, and a job
process that restarts between the transition and the send finds the notification pending.
Channel secrets (signing secrets, Slack and Discord URLs, SMTP passwords) sit in their own
column and are never shown back in full.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

ORG = "organizations.id"


def upgrade() -> None:
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("secrets", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("source", sa.String(10), nullable=False, server_default="api"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("uq_alert_channels_org_name", "alert_channels", ["org_id", "name"], unique=True)
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("filter", sa.JSON, nullable=False),
        sa.Column("window_s", sa.Integer, nullable=False),
        sa.Column("comparison", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("min_requests", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cooldown_s", sa.Integer, nullable=False, server_default="0"),
        sa.Column("channels", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("source", sa.String(10), nullable=False, server_default="api"),
        sa.Column("state", sa.String(10), nullable=False, server_default="ok"),
        sa.Column("state_since", sa.BigInteger),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_value", sa.Float),
        sa.Column("last_count", sa.BigInteger),
        sa.Column("last_evaluated_at", sa.BigInteger),
        sa.Column("last_fired_at", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("uq_alert_rules_org_name", "alert_rules", ["org_id", "name"], unique=True)
    op.create_table(
        "alert_events",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("rule_id", sa.String(36), nullable=False),
        sa.Column("rule_name", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("metric", sa.String(40), nullable=False),
        sa.Column("comparison", sa.String(2), nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("request_count", sa.BigInteger),
        sa.Column("notified", sa.Boolean, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_alert_events_org_at", "alert_events", ["org_id", "at"])
    op.create_index("ix_alert_events_rule_at", "alert_events", ["rule_id", "at"])
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("channel_id", sa.String(36), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("lease_owner", sa.String(80)),
        sa.Column("lease_until", sa.BigInteger),
        sa.Column("last_error", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("sent_at", sa.BigInteger),
    )
    op.create_index(
        "uq_alert_notifications_event_channel",
        "alert_notifications",
        ["event_id", "channel_id"],
        unique=True,
    )
    op.create_index(
        "ix_alert_notifications_due", "alert_notifications", ["status", "next_attempt_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_alert_notifications_due", table_name="alert_notifications")
    op.drop_index("uq_alert_notifications_event_channel", table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_index("ix_alert_events_rule_at", table_name="alert_events")
    op.drop_index("ix_alert_events_org_at", table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_index("uq_alert_rules_org_name", table_name="alert_rules")
    op.drop_table("alert_rules")
    op.drop_index("uq_alert_channels_org_name", table_name="alert_channels")
    op.drop_table("alert_channels")
