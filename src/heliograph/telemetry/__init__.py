"""Telemetry interop: Prometheus metrics, OpenTelemetry export, OTLP ingest."""
