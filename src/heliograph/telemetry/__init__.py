"""Telemetry interop: Prometheus metrics, OpenTelemetry export, OTLP ingest.

Ingest has two halves: ``otlp_decode`` and ``otlp_route`` run on the request path and only
check, normalise and spool a batch; ``otlp_records``, ``otlp_genai`` and ``otlp_messages`` run
in the writer and turn spooled spans into span rows and, for LLM calls, records.
"""
