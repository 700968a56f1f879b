"""One module per wire protocol; each has ``analyse_request`` and ``analyse_response``."""

from __future__ import annotations

import importlib
from typing import Any, Protocol

from heliograph.providers.openai import Analysis

PROTOCOLS = ("openai", "anthropic", "ollama")


class Analyser(Protocol):
    def analyse_request(
        self, method: str, endpoint: str, body: bytes, ctype: str, out: Analysis
    ) -> None: ...

    def analyse_response(
        self, endpoint: str, body: bytes, ctype: str, marks: list[Any], out: Analysis
    ) -> None: ...


def analyser(protocol: str) -> Analyser:
    """The analysis module for a protocol (OpenAI's for anything unknown)."""
    name = protocol if protocol in PROTOCOLS else "openai"
    module: Analyser = importlib.import_module(f"heliograph.providers.{name}")
    return module
