"""Debian's Chromium driven by Playwright, for the browser tests (browsers cannot be
downloaded here). Missing Chromium fails in CI and skips elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import IN_CI

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling out of a closed network.
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_browser() -> Iterator[Any]:
    """A launched headless Chromium for a module-scoped fixture to yield from."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"browser tests need Chromium in CI: {message}")
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
