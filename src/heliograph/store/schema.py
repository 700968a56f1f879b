"""Tables of the store, as SQLAlchemy Core metadata shared by SQLite and PostgreSQL.

Times are integer milliseconds since the Unix epoch (UTC) so both dialects compare, bucket
and index them the same way. Money is integer nano-USD. Bodies live in their own table so
scans of the requests table never drag prompt text along.
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
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    true,
)

metadata = MetaData()

organizations = Table(
    "organizations",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("scope", String(10), nullable=False),
    Column("prefix", String(16), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger),
    Column("last_used_at", BigInteger),
)

requests = Table(
    "requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), nullable=False),
    Column("key_id", String(36)),
    Column("created_at", BigInteger, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("upstream", String(64), nullable=False),
    Column("method", String(8), nullable=False),
    Column("endpoint", String(255), nullable=False),
    Column("model", String(255)),
    Column("response_model", String(255)),
    Column("stream", Boolean, nullable=False),
    Column("status", Integer, nullable=False),
    Column("state", String(12), nullable=False),
    Column("error", Text),
    Column("latency_ms", Float),
    Column("ttft_ms", Float),
    Column("output_tokens_per_s", Float),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("total_tokens", Integer),
    Column("cached_tokens", Integer),
    Column("reasoning_tokens", Integer),
    Column("cost_nusd", BigInteger),
    Column("user_id", String(255)),
    Column("session_id", String(255)),
    Column("properties", JSON),
    # 0002
    Column("protocol", String(16)),
    Column("cache_write_tokens", Integer),
    Column("prompt_tokens_per_s", Float),
    Column("load_ms", Float),
    Column("tokens_estimated", Boolean, nullable=False, server_default=false()),
    Column("cost_known", Boolean, nullable=False, server_default=false()),
    Column("cost_input_nusd", BigInteger),
    Column("cost_output_nusd", BigInteger),
    Column("cost_cache_read_nusd", BigInteger),
    Column("cost_cache_write_nusd", BigInteger),
    Column("cost_source", String(16)),
    Column("price_ref", String(255)),
    # 0004
    Column("session_path", String(255)),
    Column("session_name", String(255)),
    Column("cache_hit", Boolean, nullable=False, server_default=false()),
    Column("cost_saved_nusd", BigInteger),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("attempts", JSON),
    Column("served_by", String(64)),
    Column("omitted", String(16)),
    Column("model_override", String(255)),
    Column("budget_note", String(255)),  # budgets admitted unpriced or unchecked (0017)
    # Open WebUI (migration 0007): who asked, as it said, and why
    Column("user_name", String(255)),
    Column("user_email", String(320)),
    Column("user_role", String(32)),
    Column("user_groups", JSON),  # group names, a list
    Column("identity", String(12)),  # jwt (verified), unverified or headers (forgeable)
    Column("task", String(40)),  # Open WebUI's background task; NULL for a chat
    Column("message_id", String(255)),  # groups the requests of one answer
    # Managed prompts (migration 0012): the prompt a request body named, as rendered
    Column("prompt_name", String(100)),
    Column("prompt_version", Integer),
    Column("prompt_label", String(100)),
    Column("prompt_inputs", JSON),  # the inputs substituted, an object of text
    # Trace context (migration 0020): the W3C trace the request belongs to, lower-case hex.
    # A gateway record's span is the child of the client's traceparent; an ingested (OTLP)
    # record keeps its own span's ids. ``source`` says which: gateway or otlp.
    Column("trace_id", String(32)),
    Column("span_id", String(16)),
    Column("parent_span_id", String(16)),
    Column("source", String(16), nullable=False, server_default="gateway"),
)

Index("ix_requests_org_created", requests.c.org_id, requests.c.created_at, requests.c.id)
Index("ix_requests_org_model", requests.c.org_id, requests.c.model, requests.c.created_at)
Index("ix_requests_org_user", requests.c.org_id, requests.c.user_id, requests.c.created_at)
Index(  # partial: most requests have no session (migration 0006)
    "ix_requests_org_session",
    requests.c.org_id,
    requests.c.session_id,
    requests.c.created_at,
    sqlite_where=requests.c.session_id.is_not(None),
    postgresql_where=requests.c.session_id.is_not(None),
)
Index("ix_requests_org_provider", requests.c.org_id, requests.c.provider, requests.c.created_at)
Index(  # partial: most requests name no prompt (migration 0013); the prompt page's metrics
    "ix_requests_org_prompt",
    requests.c.org_id,
    requests.c.prompt_name,
    requests.c.created_at,
    requests.c.prompt_version,
    sqlite_where=requests.c.prompt_name.is_not(None),
    postgresql_where=requests.c.prompt_name.is_not(None),
)
Index(  # partial: the trace view joins a trace's records (migration 0020)
    "ix_requests_org_trace",
    requests.c.org_id,
    requests.c.trace_id,
    sqlite_where=requests.c.trace_id.is_not(None),
    postgresql_where=requests.c.trace_id.is_not(None),
)

request_bodies = Table(
    "request_bodies",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("encoding", String(8), nullable=False),
    Column("request_body", LargeBinary),
    Column("response_body", LargeBinary),
    Column("request_headers", JSON),
    Column("truncated", Boolean, nullable=False, default=False),
    # The record's time (0023): what PostgreSQL partitions bodies by, month by month. NULL
    # only on SQLite rows stored before 0023 (SQLite has no partitions).
    Column("created_at", BigInteger),
)

request_groups = Table(
    "request_groups",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("org_id", String(36), nullable=False),
)
Index("ix_request_groups_lookup", request_groups.c.org_id, request_groups.c.name)

end_users = Table(  # the people behind user ids: what Open WebUI last said of each
    "end_users",
    metadata,
    Column("org_id", String(36), primary_key=True),
    Column("user_id", String(255), primary_key=True),
    Column("name", String(255)),
    Column("email", String(320)),
    Column("role", String(32)),
    Column("groups", JSON),  # names
    Column("group_ids", JSON),
    Column("identity", String(12)),
    Column("first_seen", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=False),
)

# PostgreSQL (0023): every stored record id, once. A partitioned table's unique keys must
# hold its partition key, so ``requests`` can only keep (id, created_at) unique; this table
# keeps a record id unique across months (a client reusing a Helicone-Request-Id next month
# is still one record). The writer fills it in the same COPY; retention deletes it by id.
# Empty on SQLite, whose ``requests`` keeps ``id`` unique itself.
request_ids = Table(
    "request_ids",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

request_properties = Table(
    "request_properties",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("org_id", String(36), nullable=False),
)

Index(
    "ix_request_properties_lookup",
    request_properties.c.org_id,
    request_properties.c.name,
    request_properties.c.value,
)

users = Table(
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("disabled_at", BigInteger),
    Column("last_login_at", BigInteger),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", String(36), ForeignKey("users.id"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)

Index("ix_web_sessions_user", web_sessions.c.user_id)

request_feedback = Table(
    "request_feedback",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("org_id", String(36), nullable=False),
    Column("rating", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
Index("ix_request_feedback_org", request_feedback.c.org_id, request_feedback.c.rating)

request_scores = Table(
    "request_scores",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("org_id", String(36), nullable=False),
    Column("value", Float, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("reason", Text),  # 0016: an online rule's evaluator says why; API scores have none
)
Index(
    "ix_request_scores_lookup",
    request_scores.c.org_id,
    request_scores.c.name,
    request_scores.c.value,
)
Index(  # 0016: charts of a score over time (a score is never older than its record)
    "ix_request_scores_time",
    request_scores.c.org_id,
    request_scores.c.name,
    request_scores.c.created_at,
)

response_cache = Table(
    "response_cache",
    metadata,
    Column("cache_key", String(64), primary_key=True),
    Column("slot", Integer, primary_key=True),
    Column("org_id", String(36), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("status", Integer, nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("source_request_id", String(36), nullable=False),
)
Index("ix_response_cache_expiry", response_cache.c.expires_at)

rate_counters = Table(
    "rate_counters",
    metadata,
    Column("counter_key", String(255), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("amount", Float, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
)
Index("ix_rate_counters_expiry", rate_counters.c.expires_at)

# Prompts (migration 0011): named templates with immutable numbered versions and labels
# (named pointers to versions). Names are unique per organization.
prompts = Table(
    "prompts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("org_id", "name", name="uq_prompts_org_name"),
)

prompt_versions = Table(
    "prompt_versions",
    metadata,
    Column("prompt_id", String(36), ForeignKey("prompts.id"), primary_key=True),
    Column("version", Integer, primary_key=True),  # the primary key makes numbers unique
    Column("messages", JSON, nullable=False),  # [{"role", "content"}], content a template
    Column("model", String(255)),
    Column("upstream", String(64)),
    Column("params", JSON, nullable=False),
    Column("variables", JSON, nullable=False),  # {name: default or null}
    Column("message", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
)

prompt_labels = Table(
    "prompt_labels",
    metadata,
    Column("prompt_id", String(36), ForeignKey("prompts.id"), primary_key=True),
    Column("label", String(64), primary_key=True),
    Column("version", Integer),  # NULL: the label points at nothing yet
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(80)),
)

prompt_label_events = Table(
    "prompt_label_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("prompt_id", String(36), ForeignKey("prompts.id"), nullable=False),
    Column("label", String(64), nullable=False),
    Column("from_version", Integer),
    Column("to_version", Integer),
    Column("at", BigInteger, nullable=False),
    Column("by", String(80)),
)
Index("ix_prompt_label_events_prompt", prompt_label_events.c.prompt_id, prompt_label_events.c.at)

# Datasets (migration 0014): named collections of items for experiments. Items never change:
# an edit archives the item and inserts a new one, a delete archives it, so an experiment that
# pinned item ids reads exactly what it ran on. A deleted dataset is archived too; its name is
# free again (the uniqueness holds among live datasets only).
datasets = Table(
    "datasets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
    Column("updated_at", BigInteger, nullable=False),
    Column("archived_at", BigInteger),
)
Index(
    "uq_datasets_org_name",
    datasets.c.org_id,
    datasets.c.name,
    unique=True,
    sqlite_where=datasets.c.archived_at.is_(None),
    postgresql_where=datasets.c.archived_at.is_(None),
)

dataset_items = Table(
    "dataset_items",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("dataset_id", String(36), ForeignKey("datasets.id"), nullable=False),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("inputs", JSON, nullable=False),  # variables, and "messages" when given
    Column("expected", Text),
    Column("metadata", JSON, nullable=False),
    Column("source_request_id", String(36)),
    Column("content_hash", String(64), nullable=False),  # of inputs and expected
    Column("position", BigInteger, nullable=False),  # the dataset's order; an edit keeps it
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
    Column("archived_at", BigInteger),
    Column("replaced_by", String(36)),  # the item an edit made, when archived by an edit
)
Index(
    "ix_dataset_items_list",
    dataset_items.c.dataset_id,
    dataset_items.c.position,
    dataset_items.c.id,
)
Index(  # duplicates are skipped among live items; archived ones may repeat
    "uq_dataset_items_hash",
    dataset_items.c.dataset_id,
    dataset_items.c.content_hash,
    unique=True,
    sqlite_where=dataset_items.c.archived_at.is_(None),
    postgresql_where=dataset_items.c.archived_at.is_(None),
)

# Experiments, saved evaluators, online evaluation and the job queue (migration 0015).
# A cell is one item x one variant; its request_id is chosen before the gateway call, so a
# runner resuming after a crash finds a finished call by its record and never repeats it.
# An experiment copies its evaluators' specs when it starts: a finished result never changes.
evaluators = Table(
    "evaluators",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("spec", JSON, nullable=False),  # evals.specs.EvaluatorSpec.to_dict()
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
    Column("updated_at", BigInteger, nullable=False),
    Column("archived_at", BigInteger),
)
Index(
    "uq_evaluators_org_name",
    evaluators.c.org_id,
    evaluators.c.name,
    unique=True,
    sqlite_where=evaluators.c.archived_at.is_(None),
    postgresql_where=evaluators.c.archived_at.is_(None),
)

experiments = Table(
    "experiments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("dataset_id", String(36), ForeignKey("datasets.id")),  # None: production sample
    Column("source", JSON, nullable=False),  # {"dataset": name} or {"filter": ..., "sample": N}
    Column("evaluators", JSON, nullable=False),  # specs copied at creation
    Column("status", String(20), nullable=False),  # queued running completed stopped failed
    Column("stop_reason", Text),  # "cost cap reached", "cancelled by user:<id>", ...
    Column("concurrency", Integer, nullable=False),
    Column("cost_cap_nusd", BigInteger),
    Column("estimated_cost_nusd", BigInteger),
    Column("spent_nusd", BigInteger, nullable=False, server_default="0"),
    Column("cells_total", Integer, nullable=False, server_default="0"),
    Column("cells_done", Integer, nullable=False, server_default="0"),
    Column("cells_failed", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
    Column("started_at", BigInteger),
    Column("finished_at", BigInteger),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_experiments_org", experiments.c.org_id, experiments.c.created_at)

experiment_variants = Table(
    "experiment_variants",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("experiment_id", String(36), ForeignKey("experiments.id"), nullable=False),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", String(200), nullable=False),  # e.g. "prompt:support@staging"
    # {"kind": "prompt", "prompt", "version" (a label resolved when the run starts), "label"?,
    #  "model"?, "upstream"?, "params"?} or {"kind": "model", "upstream", "model", "params"?}
    Column("spec", JSON, nullable=False),
)
Index(
    "uq_experiment_variants_pos",
    experiment_variants.c.experiment_id,
    experiment_variants.c.position,
    unique=True,
)

experiment_cells = Table(
    "experiment_cells",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("experiment_id", String(36), ForeignKey("experiments.id"), nullable=False),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("variant_id", String(36), nullable=False),
    Column("item_id", String(36), nullable=False),  # a dataset item, or a request (sample)
    Column("item_position", Integer, nullable=False),
    Column("status", String(20), nullable=False),  # pending running done error skipped
    Column("request_id", String(36), nullable=False),  # the gateway record of its call
    Column("output", Text),
    Column("error", Text),
    Column("prompt_tokens", BigInteger),
    Column("completion_tokens", BigInteger),
    Column("cost_nusd", BigInteger),
    Column("latency_ms", Float),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("started_at", BigInteger),
    Column("finished_at", BigInteger),
)
Index(
    "ix_experiment_cells_grid",
    experiment_cells.c.experiment_id,
    experiment_cells.c.item_position,
    experiment_cells.c.variant_id,
)
Index("ix_experiment_cells_status", experiment_cells.c.experiment_id, experiment_cells.c.status)
Index("uq_experiment_cells_request", experiment_cells.c.request_id, unique=True)

experiment_scores = Table(
    "experiment_scores",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("experiment_id", String(36), ForeignKey("experiments.id"), nullable=False),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("cell_id", String(36), nullable=False),
    Column("evaluator", String(100), nullable=False),
    Column("value", Float),  # numbers; pass/fail as 1.0/0.0
    Column("label", String(200)),  # categories
    Column("passed", Boolean),
    Column("reason", Text),
    Column("error", Text),  # the evaluator could not score: never a zero
    Column("judge_request_id", String(36)),  # the judge's own gateway record
    Column("created_at", BigInteger, nullable=False),
)
Index(
    "uq_experiment_scores_cell",
    experiment_scores.c.cell_id,
    experiment_scores.c.evaluator,
    unique=True,
)
Index("ix_experiment_scores_exp", experiment_scores.c.experiment_id, experiment_scores.c.evaluator)

online_eval_rules = Table(
    "online_eval_rules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("evaluator", JSON, nullable=False),  # a spec, copied
    Column("filter", JSON, nullable=False),  # the Requests page's filter parameters
    Column("sample_rate", Float, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("cursor", String(64)),  # the last record considered (created_at, id)
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_run_at", BigInteger),  # 0016: when the sampler last looked at the rule
)
Index("ix_online_eval_rules_org", online_eval_rules.c.org_id, online_eval_rules.c.name)

eval_queue = Table(
    "eval_queue",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("rule_id", String(36), nullable=False),
    Column("request_id", String(36), nullable=False),
    Column("status", String(20), nullable=False),  # pending done error
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("done_at", BigInteger),
    # 0016: a worker claims an entry with a guarded UPDATE; a lease that ran out is taken over
    Column("lease_owner", String(80)),
    Column("lease_until", BigInteger),
)
Index("uq_eval_queue_rule_request", eval_queue.c.rule_id, eval_queue.c.request_id, unique=True)
Index("ix_eval_queue_status", eval_queue.c.status, eval_queue.c.created_at)
Index("ix_eval_queue_rule_status", eval_queue.c.rule_id, eval_queue.c.status)

# The job process's durable queue: leased by one process at a time, taken over when a lease
# runs out (its holder crashed), so replicas never run one job twice and nothing is dropped.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id")),
    Column("kind", String(40), nullable=False),  # "experiment", ...
    Column("ref_id", String(36)),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # queued running done failed cancelled
    Column("lease_owner", String(80)),
    Column("lease_until", BigInteger),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)
Index("ix_jobs_status", jobs.c.status, jobs.c.created_at)
Index("ix_jobs_ref", jobs.c.kind, jobs.c.ref_id)

# Budgets (migration 0017): limits enforced before forwarding. ``seq`` is bumped to lock a
# budget's row while a reservation or a settlement reads and changes its usage.
budgets = Table(
    "budgets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("org_id", String(36), ForeignKey("organizations.id"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("scope", JSON, nullable=False),  # {"user_id"?, "key_id"?, "property"?, "model"?, ...}
    Column("window", String(8), nullable=False),  # "<N>h", "day", "week", "month"
    Column("timezone", String(64), nullable=False),
    Column("limit_unit", String(10), nullable=False),  # "usd" (nano-USD), "tokens", "requests"
    Column("limit_amount", BigInteger, nullable=False),
    Column("action", String(8), nullable=False),  # "block" or "alert"
    Column("thresholds", JSON, nullable=False),  # warning percentages
    Column("source", String(10), nullable=False),  # "api" or "config"
    Column("seq", BigInteger, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(80)),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("org_id", "name", name="uq_budgets_org_name"),
)

# Settled usage per budget and bucket (a calendar window's start, or a rolling bucket).
budget_spend = Table(
    "budget_spend",
    metadata,
    Column("budget_id", String(36), primary_key=True),
    Column("bucket", BigInteger, primary_key=True),
    Column("amount", BigInteger, nullable=False),
)

# Reservations not yet settled: one row per gateway lease, expiring if never settled.
budget_holds = Table(
    "budget_holds",
    metadata,
    Column("hold_id", String(120), primary_key=True),
    Column("budget_id", String(36), nullable=False),
    Column("wk", BigInteger, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # ms
)
Index("ix_budget_holds_budget", budget_holds.c.budget_id, budget_holds.c.wk)

# The operations tables (webhooks, alerts, spans) and the retention tables register on
# ``metadata`` from their own modules.
from heliograph.store import schema_ops as _ops  # noqa: E402, F401
from heliograph.store import schema_retention as _retention  # noqa: E402, F401
