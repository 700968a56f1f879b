"""The base URLs a new user pastes into a client, printed by ``serve`` and ``demo`` at start.

One place for them, so both commands print what the README's client table says: the OpenAI
route (the openai SDK, Open WebUI's OpenAI connection), the Anthropic route and the Ollama
route (the ollama SDK, Open WebUI's Ollama connection), each with the write key in the path.
"""

from __future__ import annotations


def base_urls(base: str, key: str) -> dict[str, str]:
    """Protocol -> base URL with ``key`` in the path."""
    return {
        "OpenAI": f"{base}/v1/{key}",
        "Anthropic": f"{base}/anthropic/{key}",
        "Ollama": f"{base}/ollama/{key}",
    }


def aligned(rows: list[tuple[str, str]]) -> list[str]:
    """``label value`` lines with the values in one column."""
    width = max(len(label) for label, _ in rows)
    return [f"{label:<{width}} {value}" for label, value in rows]


def client_lines(base: str, key: str) -> list[str]:
    """What ``serve`` prints: the OpenAI base URL first (most clients), then the others."""
    urls = base_urls(base, key)
    return aligned(
        [
            ("Point your OpenAI-compatible client at:", urls["OpenAI"]),
            ("  your Anthropic SDK at:", urls["Anthropic"]),
            ("  your Ollama-compatible client at:", urls["Ollama"]),
        ]
    )
