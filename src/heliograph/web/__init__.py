"""The dashboard: server-rendered pages, our own CSS/JS, SVG charts."""

from __future__ import annotations

from starlette.routing import BaseRoute


def routes() -> list[BaseRoute]:
    """Dashboard routes, mounted by ``app.create_app``."""
    return []
