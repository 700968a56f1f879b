"""Retention: per-organization limits on how long bodies, records and rollups are kept."""
