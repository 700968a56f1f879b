"""What the writer learns from one exchange, and the pieces every protocol's analysis shares.

``Analysis`` is filled by a protocol module (openai, anthropic, ollama); ``Clock`` turns byte
offsets of a streamed response into arrival times; the usage and timings readers take the
OpenAI shape, which most servers speak.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class Analysis:
    """What the writer learns from one exchange; None means unknown."""

    kind: str = "other"
    model: str | None = None
    response_model: str | None = None
    stream: bool = False
    user: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None  # prompt tokens read from the provider's cache
    cache_write_tokens: int | None = None  # prompt tokens written to it (Anthropic)
    reasoning_tokens: int | None = None
    ttft_ms: float | None = None
    generation_ms: float | None = None  # first token to last token, from stream timing
    server_tokens_per_s: float | None = None  # generation speed the server itself reported
    prompt_tokens_per_s: float | None = None  # prompt processing speed the server reported
    load_ms: float | None = None  # model load time the server reported (cold start)
    stream_error: str | None = None
    response_body: bytes | None = None
    request_doc: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


def load_request(body: bytes, out: Analysis) -> dict[str, Any] | None:
    """The JSON object a request body holds (kept as ``out.request_doc``), if it is one."""
    if not body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    out.request_doc = doc
    return doc if isinstance(doc, dict) else None


def apply_usage(usage: Any, out: Analysis) -> None:
    """Read either usage shape: prompt/completion (chat, embeddings) or input/output."""
    if not isinstance(usage, dict):
        return
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    total = usage.get("total_tokens")
    if isinstance(prompt, int):
        out.prompt_tokens = prompt
    if isinstance(completion, int):
        out.completion_tokens = completion
    elif isinstance(prompt, int) and isinstance(total, int):
        out.completion_tokens = max(total - prompt, 0)
    if isinstance(total, int):
        out.total_tokens = total
    elif out.prompt_tokens is not None and out.completion_tokens is not None:
        out.total_tokens = out.prompt_tokens + out.completion_tokens
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
        out.cached_tokens = details["cached_tokens"]
    details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    if isinstance(details, dict) and isinstance(details.get("reasoning_tokens"), int):
        out.reasoning_tokens = details["reasoning_tokens"]


def apply_timings(timings: Any, out: Analysis) -> None:
    """llama.cpp's server reports its own speeds in a ``timings`` object."""
    if not isinstance(timings, dict):
        return
    predicted = timings.get("predicted_per_second")
    prompt = timings.get("prompt_per_second")
    if isinstance(predicted, int | float) and predicted > 0:
        out.server_tokens_per_s = float(predicted)
    if isinstance(prompt, int | float) and prompt > 0:
        out.prompt_tokens_per_s = float(prompt)


class Clock:
    """Maps a byte offset of the response to the time it arrived.

    Offsets are usually asked for in increasing order, so a cursor walks the marks; an
    earlier offset falls back to a binary search.
    """

    def __init__(self, marks: list[tuple[int, float]]) -> None:
        self.marks = marks
        self._i = 0

    def at(self, offset: int) -> float | None:
        marks = self.marks
        if not marks:
            return None
        i = self._i
        if i and marks[i - 1][0] >= offset:
            i = bisect.bisect_left(marks, offset, key=_mark_offset)
        last = len(marks) - 1
        while i < last and marks[i][0] < offset:
            i += 1
        self._i = i
        return marks[i][1]


def _mark_offset(mark: tuple[int, float]) -> int:
    return mark[0]
