"""Heliograph: a self-hosted LLM observability gateway."""

__version__ = "0.1.0"
