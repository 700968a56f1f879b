"""Debian's Chromium driven by Playwright, for the browser tests (browsers cannot be
downloaded here). Missing Chromium fails in CI and skips elsewhere."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
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


ARTIFACTS = Path(
    os.environ.get(
        "HELIOGRAPH_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"
    )
)


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under ``test-artifacts/screenshots/`` for review.

    Every browser test of a page calls this once the page shows what it asserts, so a run
    leaves a picture of every page (CI keeps the directory as the run's artifacts)."""
    target = ARTIFACTS / "screenshots" / f"{name}.png"
    target.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(target), full_page=True)
    return target


class Watch:
    """What a page must never do: open dialogs (a script ran) or break the Content Security
    Policy. Attach one to each page; assert its lists are empty at the end."""

    def __init__(self, page: Any) -> None:
        self.dialogs: list[str] = []
        self.csp: list[str] = []
        page.on("dialog", self._dialog)
        page.on("console", self._console)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _console(self, msg: Any) -> None:
        if "Content Security Policy" in msg.text:
            self.csp.append(msg.text)


def sign_in(page: Any, email: str, password: str) -> None:
    """Fill in the dashboard's login form the page shows and submit it (the caller waits for
    the page it expects next)."""
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
