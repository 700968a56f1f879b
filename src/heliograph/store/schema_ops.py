"""Tables of the operations around records: record webhooks, alerts and ingested spans.

They share ``schema.metadata`` (importing ``heliograph.store.schema`` registers them), and
live apart only so that each schema module stays readable.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
    true,
)

from heliograph.store.schema import metadata

# Record webhooks (0018). An endpoint receives an organization's records, or those matching
# its filter (the Requests page's parameters). The writer adds one outbox row per new record
# of an organization with an enabled endpoint, in the transaction that stores the record; the
# job process fans each outbox row out to a delivery per matching endpoint and sends those
# under a lease (a guarded UPDATE), with backoff, until delivered or given up.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("url", Text, nullable=False),
    Column("filter", JSON, nullable=False),  # the Requests page's filter parameters
    Column("secret", String(200), nullable=False),  # the signing secret, never shown again
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("include_bodies", Boolean, nullable=False, server_default=false()),
    Column("source", String(10), nullable=False),  # api (API and dashboard) or config
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_error", Text),
    Column("last_error_at", BigInteger),
    Column("last_success_at", BigInteger),
)
Index(
    "uq_webhook_endpoints_org_name",
    webhook_endpoints.c.org_id,
    webhook_endpoints.c.name,
    unique=True,
)

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("org_id", String(36), nullable=False),
    Column("created_at", BigInteger, nullable=False),  # when the record was stored
)
Index("ix_webhook_outbox_time", webhook_outbox.c.created_at)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("endpoint_id", String(36), nullable=False),
    Column("org_id", String(36), nullable=False),
    Column("request_id", String(36), nullable=False),
    Column("event", String(40), nullable=False),  # record.created, or test
    Column("status", String(12), nullable=False),  # pending delivered failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_owner", String(80)),
    Column("lease_until", BigInteger),
    Column("last_status", Integer),  # the receiver's last HTTP status
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger),
)
Index(
    "uq_webhook_deliveries_endpoint_request",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.request_id,
    unique=True,
)
Index(
    "ix_webhook_deliveries_due",
    webhook_deliveries.c.endpoint_id,
    webhook_deliveries.c.status,
    webhook_deliveries.c.next_attempt_at,
)
Index(
    "ix_webhook_deliveries_log", webhook_deliveries.c.endpoint_id, webhook_deliveries.c.created_at
)
Index("ix_webhook_deliveries_request", webhook_deliveries.c.request_id)  # retention (0022)

# ---- Alerts (migration 0019): rules over the rollups, channels, history, an outbox ------------
# A rule's state changes with one guarded UPDATE (its ``version``), in the transaction that
# stores the event and queues one notification per channel, so a transition is recorded and
# notified once however many evaluators run; the outbox survives a restart of the job process.
alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("kind", String(20), nullable=False),  # webhook slack discord email
    Column("config", JSON, nullable=False),  # what may be shown: host, port, to, ...
    Column("secrets", JSON, nullable=False),  # never shown back in full
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("source", String(10), nullable=False, server_default="api"),  # api config
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
Index("uq_alert_channels_org_name", alert_channels.c.org_id, alert_channels.c.name, unique=True)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("metric", String(40), nullable=False),
    Column("filter", JSON, nullable=False),  # the Requests page's filter parameters
    Column("window_s", Integer, nullable=False),
    Column("comparison", String(2), nullable=False),  # > >= < <=
    Column("threshold", Float, nullable=False),
    Column("min_requests", Integer, nullable=False, server_default="0"),
    Column("cooldown_s", Integer, nullable=False, server_default="0"),
    Column("channels", JSON, nullable=False),  # channel ids
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("source", String(10), nullable=False, server_default="api"),
    Column("state", String(10), nullable=False, server_default="ok"),  # ok firing resolved
    Column("state_since", BigInteger),
    Column("version", Integer, nullable=False, server_default="0"),  # guards transitions
    Column("last_value", Float),
    Column("last_count", BigInteger),
    Column("last_evaluated_at", BigInteger),
    Column("last_fired_at", BigInteger),  # the last notified firing (cooldown)
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
    Column("updated_at", BigInteger, nullable=False),
)
Index("uq_alert_rules_org_name", alert_rules.c.org_id, alert_rules.c.name, unique=True)

alert_events = Table(
    "alert_events",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("rule_id", String(36), nullable=False),
    Column("rule_name", String(100), nullable=False),
    Column("kind", String(10), nullable=False),  # firing resolved
    Column("metric", String(40), nullable=False),
    Column("comparison", String(2), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("value", Float),
    Column("request_count", BigInteger),
    Column("notified", Boolean, nullable=False),  # false: held back by the cooldown
    Column("at", BigInteger, nullable=False),
)
Index("ix_alert_events_org_at", alert_events.c.org_id, alert_events.c.at)
Index("ix_alert_events_rule_at", alert_events.c.rule_id, alert_events.c.at)

alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("channel_id", String(36), nullable=False),
    Column("payload", JSON, nullable=False),  # the message, as of the transition
    Column("status", String(10), nullable=False),  # pending sent failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", BigInteger, nullable=False),
    Column("lease_owner", String(80)),
    Column("lease_until", BigInteger),
    Column("last_error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("sent_at", BigInteger),
)
Index(
    "uq_alert_notifications_event_channel",
    alert_notifications.c.event_id,
    alert_notifications.c.channel_id,
    unique=True,
)
Index(
    "ix_alert_notifications_due",
    alert_notifications.c.status,
    alert_notifications.c.next_attempt_at,
)

# Spans ingested over OTLP (migration 0021) that are not LLM calls, or that are and became
# records (``request_id``): agents, tools, MCP calls, retrieval. They give the trace view its
# tree; LLM calls themselves are records (``requests.trace_id``), joined by trace id.
spans = Table(
    "spans",
    metadata,
    Column("org_id", String(36), ForeignKey("organizations.id"), primary_key=True),
    Column("trace_id", String(32), primary_key=True),  # lower-case hex
    Column("span_id", String(16), primary_key=True),
    Column("parent_span_id", String(16)),
    Column("name", String(255), nullable=False),
    Column("kind", String(12), nullable=False),  # internal server client producer consumer
    Column("service", String(255)),  # the resource's service.name
    Column("start_ns", BigInteger, nullable=False),  # Unix nanoseconds
    Column("end_ns", BigInteger, nullable=False),
    Column("status", String(8), nullable=False),  # unset ok error
    Column("status_message", Text),
    Column("attributes", JSON),  # the span's attributes, flattened to name -> value
    Column("request_id", String(36)),  # the record an LLM span became, if any
    Column("created_at", BigInteger, nullable=False),  # when it was stored, ms (retention)
)
Index("ix_spans_org_start", spans.c.org_id, spans.c.start_ns)
Index("ix_spans_org_created", spans.c.org_id, spans.c.created_at)  # retention (0022)
Index(  # retention deletes a record's spans with it (0022)
    "ix_spans_request",
    spans.c.request_id,
    sqlite_where=spans.c.request_id.is_not(None),
    postgresql_where=spans.c.request_id.is_not(None),
)
