"""Alerts, notification channels and record webhooks: what leaves Heliograph on its own."""
