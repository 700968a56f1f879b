"""Experiments, saved evaluators, online evaluation rules, and the background job queue.

An experiment runs variants over pinned items: its cells (item x variant) are created when it
starts, each with the request id its gateway call will carry, so after a crash the runner
finds a finished call by its record and never calls the upstream again for it. Scores live
per cell and evaluator (``experiment_scores``); what an evaluator was is copied into the
experiment when it starts (``experiments.evaluators``), so editing a saved evaluator never
changes a finished result.

``jobs`` is the durable queue of the job process that ``heliograph serve`` starts beside the
writer: a job is leased (``lease_owner``, ``lease_until``) by one process at a time, so
several replicas never run the same job twice, and a lease that ran out (a crash) is taken
over. ``eval_queue`` holds the production requests an online rule sampled, until scored.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

ORG = "organizations.id"


def upgrade() -> None:
    op.create_table(
        "evaluators",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("archived_at", sa.BigInteger),
    )
    live = sa.text("archived_at IS NULL")
    op.create_index(
        "uq_evaluators_org_name",
        "evaluators",
        ["org_id", "name"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )
    op.create_table(
        "experiments",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id")),
        sa.Column("source", sa.JSON, nullable=False),
        sa.Column("evaluators", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stop_reason", sa.Text),
        sa.Column("concurrency", sa.Integer, nullable=False),
        sa.Column("cost_cap_nusd", sa.BigInteger),
        sa.Column("estimated_cost_nusd", sa.BigInteger),
        sa.Column("spent_nusd", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("cells_total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cells_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cells_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("started_at", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_experiments_org", "experiments", ["org_id", "created_at"])
    op.create_table(
        "experiment_variants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("experiment_id", sa.String(36), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
    )
    op.create_index(
        "uq_experiment_variants_pos",
        "experiment_variants",
        ["experiment_id", "position"],
        unique=True,
    )
    op.create_table(
        "experiment_cells",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("experiment_id", sa.String(36), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("variant_id", sa.String(36), nullable=False),
        sa.Column("item_id", sa.String(36), nullable=False),
        sa.Column("item_position", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("output", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("prompt_tokens", sa.BigInteger),
        sa.Column("completion_tokens", sa.BigInteger),
        sa.Column("cost_nusd", sa.BigInteger),
        sa.Column("latency_ms", sa.Float),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("started_at", sa.BigInteger),
        sa.Column("finished_at", sa.BigInteger),
    )
    op.create_index(
        "ix_experiment_cells_grid",
        "experiment_cells",
        ["experiment_id", "item_position", "variant_id"],
    )
    op.create_index("ix_experiment_cells_status", "experiment_cells", ["experiment_id", "status"])
    op.create_index("uq_experiment_cells_request", "experiment_cells", ["request_id"], unique=True)
    op.create_table(
        "experiment_scores",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("experiment_id", sa.String(36), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("cell_id", sa.String(36), nullable=False),
        sa.Column("evaluator", sa.String(100), nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("label", sa.String(200)),
        sa.Column("passed", sa.Boolean),
        sa.Column("reason", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("judge_request_id", sa.String(36)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "uq_experiment_scores_cell",
        "experiment_scores",
        ["cell_id", "evaluator"],
        unique=True,
    )
    op.create_index("ix_experiment_scores_exp", "experiment_scores", ["experiment_id", "evaluator"])
    op.create_table(
        "online_eval_rules",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("evaluator", sa.JSON, nullable=False),
        sa.Column("filter", sa.JSON, nullable=False),
        sa.Column("sample_rate", sa.Float, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("cursor", sa.String(64)),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_online_eval_rules_org", "online_eval_rules", ["org_id", "name"])
    op.create_table(
        "eval_queue",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG), nullable=False),
        sa.Column("rule_id", sa.String(36), nullable=False),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("done_at", sa.BigInteger),
    )
    op.create_index(
        "uq_eval_queue_rule_request", "eval_queue", ["rule_id", "request_id"], unique=True
    )
    op.create_index("ix_eval_queue_status", "eval_queue", ["status", "created_at"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey(ORG)),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("ref_id", sa.String(36)),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("lease_owner", sa.String(80)),
        sa.Column("lease_until", sa.BigInteger),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_jobs_status", "jobs", ["status", "created_at"])
    op.create_index("ix_jobs_ref", "jobs", ["kind", "ref_id"])


def downgrade() -> None:
    for index, table in (
        ("ix_jobs_ref", "jobs"),
        ("ix_jobs_status", "jobs"),
        ("ix_eval_queue_status", "eval_queue"),
        ("uq_eval_queue_rule_request", "eval_queue"),
        ("ix_online_eval_rules_org", "online_eval_rules"),
        ("ix_experiment_scores_exp", "experiment_scores"),
        ("uq_experiment_scores_cell", "experiment_scores"),
        ("uq_experiment_cells_request", "experiment_cells"),
        ("ix_experiment_cells_status", "experiment_cells"),
        ("ix_experiment_cells_grid", "experiment_cells"),
        ("uq_experiment_variants_pos", "experiment_variants"),
        ("ix_experiments_org", "experiments"),
        ("uq_evaluators_org_name", "evaluators"),
    ):
        op.drop_index(index, table_name=table)
    for table in (
        "jobs",
        "eval_queue",
        "online_eval_rules",
        "experiment_scores",
        "experiment_cells",
        "experiment_variants",
        "experiments",
        "evaluators",
    ):
        op.drop_table(table)
