"""Tables of retention: per-organization overrides of the server's retention settings, and the
lease that keeps two job processes from walking the same deletions at once.

Kept apart from ``store/schema.py`` (which registers this module on the shared ``metadata``)
so that module stays within the size limit.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Integer, String, Table

from heliograph.store.schema import metadata

# One row per organization that overrides a server default. A NULL column means "use the
# server's setting"; 0 means "keep for ever" even when the server default deletes.
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("org_id", String(36), ForeignKey("organizations.id"), primary_key=True),
    Column("bodies_days", Integer),
    Column("records_days", Integer),
    Column("rollups_days", Integer),
    Column("updated_at", BigInteger, nullable=False),
    Column("updated_by", String(80)),
)

# A single named lease (``name = 'retention'``): the job process that holds it runs the pass;
# the others skip their tick. Deletes are idempotent anyway; the lease saves duplicated work.
retention_leases = Table(
    "retention_leases",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("owner", String(80)),
    Column("until_ms", BigInteger, nullable=False),
    Column("last_run_at", BigInteger),
)
