"""Bringing records in from other observability tools (today: Helicone's exports)."""
