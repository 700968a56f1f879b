"""Datasets: named collections of immutable items, for experiments and evaluators.

An item is never updated in place: an edit archives it (``archived_at``, ``replaced_by``)
and inserts a new one, and a delete archives it, so an experiment that pinned item ids reads
exactly the items it ran on. Items keep the order they were added in (``position``, counted
per dataset; an edit takes the place of the item it replaces). Names are unique among an organization's live datasets, and
content hashes among a dataset's live items (partial unique indexes, on both dialects): a
deleted dataset frees its name, and an archived item does not block adding it back.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("archived_at", sa.BigInteger),
    )
    live = sa.text("archived_at IS NULL")
    op.create_index(
        "uq_datasets_org_name",
        "datasets",
        ["org_id", "name"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )
    op.create_table(
        "dataset_items",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("dataset_id", sa.String(36), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("org_id", sa.String(36), sa.ForeignKey("organizations.id"), nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("expected", sa.Text),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("source_request_id", sa.String(36)),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(80)),
        sa.Column("archived_at", sa.BigInteger),
        sa.Column("replaced_by", sa.String(36)),
    )
    op.create_index("ix_dataset_items_list", "dataset_items", ["dataset_id", "position", "id"])
    op.create_index(
        "uq_dataset_items_hash",
        "dataset_items",
        ["dataset_id", "content_hash"],
        unique=True,
        sqlite_where=live,
        postgresql_where=live,
    )


def downgrade() -> None:
    op.drop_index("uq_dataset_items_hash", table_name="dataset_items")
    op.drop_index("ix_dataset_items_list", table_name="dataset_items")
    op.drop_table("dataset_items")
    op.drop_index("uq_datasets_org_name", table_name="datasets")
    op.drop_table("datasets")
