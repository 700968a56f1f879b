"""Telemetry interop: Heliograph's records as OpenTelemetry spans, and other monitoring."""
