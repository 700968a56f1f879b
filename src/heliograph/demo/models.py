"""The simulated models of ``heliograph demo``: who serves them, how fast, and how that changes.

Cloud models answer at a steady pace. Local Ollama models are unloaded after Ollama's keep-alive
(five idle minutes), so the first request after a pause pays to load the weights again (a cold
start, over a second). One local model, ``qwen3:8b``, slows down day by day through the demo's
week (its GPU is shared with a batch job that keeps growing), so the model trend charts have a
story to tell. Time is always passed in: the same figures serve live traffic (the clock) and the
backfilled week (its own virtual clock).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

KEEP_ALIVE_S = 300.0  # Ollama unloads a model idle this long (its default keep_alive)
WEEK_S = 7 * 86_400.0


@dataclass(frozen=True, slots=True)
class Model:
    """How one simulated model behaves when nothing is wrong with it."""

    name: str
    upstream: str  # the demo upstream that serves it: openai, anthropic or ollama
    tokens_per_s: float  # output speed
    ttft_ms: float  # time to the first token of a short prompt (network and queueing)
    prompt_tokens_per_s: float  # prompt processing speed
    load_ms: tuple[float, float] = (0.0, 0.0)  # a cold load takes this long (local models)
    slows_by: float = 0.0  # share of its speed lost by the end of the demo's week

    @property
    def local(self) -> bool:
        return self.upstream == "ollama"


MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        Model("gpt-4o-mini", "openai", 85.0, 320.0, 6000.0),
        Model("gpt-4o", "openai", 55.0, 480.0, 4000.0),
        Model("claude-sonnet-4-6", "anthropic", 62.0, 650.0, 4000.0),
        Model("llama3.2", "ollama", 44.0, 60.0, 900.0, load_ms=(1600.0, 2800.0)),
        Model("qwen3:8b", "ollama", 31.0, 90.0, 420.0, load_ms=(3200.0, 5200.0), slows_by=0.55),
    )
}
DEGRADING = "qwen3:8b"


def model(name: str) -> Model:
    """The named model, or a middling cloud model for a name the demo does not know."""
    return MODELS.get(name) or Model(name, "openai", 50.0, 400.0, 3000.0)


@dataclass
class Conditions:
    """What changes over time: how far into the demo's week it is, which models are loaded."""

    week_start: float  # Unix seconds; the demo's history begins here
    loaded_until: dict[str, float] = field(default_factory=dict)  # model -> unload time

    def progress(self, now: float) -> float:
        """0 at the start of the week, 1 at its end (and after)."""
        return min(max((now - self.week_start) / WEEK_S, 0.0), 1.0)

    def speed(self, m: Model, now: float, rng: random.Random) -> float:
        """Output tokens/s of one request at ``now``: the model's pace, its slowdown, noise."""
        pace = m.tokens_per_s * (1.0 - m.slows_by * self.progress(now))
        return max(1.0, pace * rng.uniform(0.9, 1.1))

    def slowdown(self, m: Model, now: float) -> float:
        """How much longer than usual the first token takes (1 = as usual)."""
        return 1.0 + 2.0 * m.slows_by * self.progress(now)

    def load(self, m: Model, now: float, rng: random.Random) -> float:
        """Milliseconds this request spends loading the model: seconds when it was unloaded,
        a few milliseconds (finding the loaded runner) when it is warm."""
        if not m.local:
            return 0.0
        if self.loaded_until.get(m.name, float("-inf")) >= now:
            return rng.uniform(8.0, 35.0)
        return rng.uniform(*m.load_ms)

    def used(self, m: Model, finished: float) -> None:
        """The model answered until ``finished``: it stays loaded for the keep-alive."""
        if m.local:
            until = finished + KEEP_ALIVE_S
            self.loaded_until[m.name] = max(self.loaded_until.get(m.name, until), until)

    def merge(self, loaded_until: dict[str, float]) -> None:
        """Take in what another simulator left loaded (the history's, made elsewhere)."""
        for name, until in loaded_until.items():
            self.loaded_until[name] = max(self.loaded_until.get(name, until), until)
