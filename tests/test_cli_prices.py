"""``heliograph prices check``: finds the model's provider itself and answers in words.

Once it assumed provider openai for every model (an Anthropic model had "no known price")
and printed a Python ``None`` as the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def check(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HELIOGRAPH_")}
    return subprocess.run(
        [sys.executable, "-m", "heliograph", "prices", "check", *args],
        env={**clean, "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_words(done: subprocess.CompletedProcess[str]) -> None:
    assert "None" not in done.stdout + done.stderr, done.stdout + done.stderr


def test_without_provider_the_model_is_found_and_the_provider_named(tmp_path: Path) -> None:
    done = check(tmp_path, "claude-3-5-sonnet-latest", "--prompt-tokens", "1000")
    assert done.returncode == 0, done.stderr
    first, price, cost = done.stdout.splitlines()
    assert first.startswith("claude-3-5-sonnet-latest: found under provider anthropic")
    assert price.startswith("Price: anthropic/claude-3-5-sonnet (genai-prices")
    assert cost.startswith("1000 prompt + 1000000 completion tokens = $15.003000000")
    assert_words(done)


def test_a_named_provider_is_used(tmp_path: Path) -> None:
    done = check(tmp_path, "gpt-4o-mini", "--provider", "openai")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Price: openai/gpt-4o-mini (genai-prices ")
    assert "= $0.750000000" in done.stdout
    local = check(tmp_path, "llama3.2", "--provider", "ollama")
    assert local.returncode == 0 and "local model on ollama" in local.stdout
    assert "= $0.000000000" in local.stdout
    assert_words(local)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("no-such-model-xyz",), "no known price for 'no-such-model-xyz' under any provider"),
        (("llama3.2", "--provider", "openai"), "no known price for openai/llama3.2: not in"),
    ],
)
def test_no_price_is_said_in_words(tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    done = check(tmp_path, *args)
    assert done.returncode == 1
    assert expected in done.stderr
    assert_words(done)


def test_a_gpu_hour_upstream_says_it_is_priced_by_time(tmp_path: Path) -> None:
    done = check(
        tmp_path,
        "my-model",
        "--provider",
        "gpubox",
        HELIOGRAPH_UPSTREAM_GPUBOX_URL="http://10.0.0.5:8000/v1",
        HELIOGRAPH_UPSTREAM_GPUBOX_GPU_USD_PER_HOUR="2.5",
    )
    assert done.returncode == 1
    assert "no per-token price for gpubox/my-model: gpu-hour gpubox" in done.stderr
    assert_words(done)
