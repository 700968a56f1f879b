"""Docs that can drift are generated from code; these tests keep them in step."""

from __future__ import annotations

from pathlib import Path

from heliograph.config import settings_markdown

README = Path(__file__).parent.parent / "README.md"


def test_readme_settings_table_matches_the_code() -> None:
    text = README.read_text()
    start = text.index("<!-- settings-table:start -->") + len("<!-- settings-table:start -->")
    end = text.index("<!-- settings-table:end -->")
    assert text[start:end].strip() == settings_markdown().strip(), (
        "README settings table is stale: regenerate with `heliograph settings --markdown`"
    )


def test_readme_names_the_run_and_test_commands() -> None:
    text = README.read_text()
    assert ".venv/bin/heliograph serve" in text
    assert "scripts/test" in text
    assert "scripts/test" in (README.parent / ".ci" / "run").read_text()
