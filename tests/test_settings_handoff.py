"""Settings handed from `heliograph serve` to its children are exactly the parent's.

Once, each setting was re-exported as an environment variable, and an upstream's unset
protocol default went to the workers as an explicit "openai": Ollama and Anthropic records
then lost their protocol whenever their URL was overridden. Children now get the settings
whole; these tests compare what a child builds with what the parent had.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from heliograph.capture.builder import make_pricebook
from heliograph.config import HANDOFF_ENV, Settings, handoff, load_settings
from heliograph.pricing import Usage

CHILD = """
import json, sys
from heliograph.config import load_settings
s = load_settings()
print(json.dumps({n: {"url": u.url, "protocol": u.protocol, "local": u.local,
                      "key": u.api_key.get_secret_value() if u.api_key else None}
                  for n, u in s.resolved_upstreams().items()}))
print(json.dumps([str(s.home), s.port, s.workers, s.writer, s.auto_migrate, s.prices]))
"""


def _child(env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.splitlines()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELIOGRAPH_")}
    return {**env, **extra}


def test_a_child_builds_the_parents_settings_from_env_file_and_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "flag-home"
    home.mkdir()
    (home / "config.toml").write_text(
        '[upstreams.myllm]\nurl = "http://gpu-box:8000/v1"\nlocal = true\n\n'
        '[[prices]]\nmodel = "ft:x*"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n'
    )
    for name in list(os.environ):
        if name.startswith("HELIOGRAPH_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HELIOGRAPH_UPSTREAM_OLLAMA_URL", "http://ollama-box:11434")
    monkeypatch.setenv("HELIOGRAPH_UPSTREAM_ANTHROPIC_URL", "http://claude-proxy:9000")
    monkeypatch.setenv("HELIOGRAPH_UPSTREAM_OPENAI_API_KEY", "sk-parent-only")
    monkeypatch.setenv("HELIOGRAPH_HOME", str(tmp_path / "env-home"))  # --home wins
    parent = load_settings(home=str(home), port=9123, workers=2)
    assert parent.resolved_upstreams()["myllm"].local is True  # config.toml from --home
    sent = parent.model_copy(update={"writer": "external", "auto_migrate": False})
    env = _clean_env(**{HANDOFF_ENV: handoff(sent)})
    # what the child has in its environment besides the handoff must not matter
    env["HELIOGRAPH_UPSTREAM_OLLAMA_PROTOCOL"] = "openai"
    env["HELIOGRAPH_PORT"] = "1"
    upstreams_line, rest_line = _child(env)
    import json

    upstreams = json.loads(upstreams_line)
    assert upstreams["ollama"] == {
        "url": "http://ollama-box:11434",
        "protocol": "ollama",
        "local": None,
        "key": None,
    }
    assert upstreams["anthropic"]["protocol"] == "anthropic"
    assert upstreams["openai"]["key"] == "sk-parent-only"
    assert upstreams["myllm"]["local"] is True
    home_s, port, workers, writer, auto_migrate, prices = json.loads(rest_line)
    assert (home_s, port, workers, writer, auto_migrate) == (str(home), 9123, 2, "external", False)
    assert prices == [{"model": "ft:x*", "input_per_mtok": 1.0, "output_per_mtok": 2.0}]
    child = {n: (u.url, u.protocol, u.local) for n, u in parent.resolved_upstreams().items()}
    assert {n: (u["url"], u["protocol"], u["local"]) for n, u in upstreams.items()} == child


def test_an_upstream_declared_local_costs_nothing_and_a_cloud_one_is_priced() -> None:
    settings = Settings(
        upstreams={
            "myllm": {"url": "http://gpu-box:8000/v1", "local": True},
            "cloudy": {"url": "http://127.0.0.1:9/v1", "local": False, "provider": "openai"},
        }
    )
    book = make_pricebook(settings)
    usage = Usage(prompt_tokens=1000, completion_tokens=1000)
    local = book.cost(provider="myllm", model="llama3.1:8b", usage=usage, upstream="myllm")
    assert local.known and local.total_nusd == 0 and local.source == "local"
    cloud = book.cost(provider="openai", model="gpt-4o-mini", usage=usage, upstream="cloudy")
    assert cloud.known and cloud.total_nusd > 0
