"""Heliograph in the monitoring people already run: Prometheus metrics (this package's
``prometheus`` and ``scrape`` modules)."""
