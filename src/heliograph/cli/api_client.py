"""A small client of the REST API for commands that talk to a running server.

Standard library only (``urllib``), so the command needs nothing the server does not. The
server comes from ``--url``, else ``HELIOGRAPH_URL``, else ``http://127.0.0.1:8787``; the key
from ``--key``, else ``HELIOGRAPH_ADMIN_KEY``.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import click
import orjson

from heliograph.config import client_environment

DEFAULT_URL = "http://127.0.0.1:8787"
F = TypeVar("F", bound=Callable[..., Any])


class ApiFailure(Exception):
    """The server answered an error (``status``; 0: no answer) with ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def server_options(f: F) -> F:
    f = click.option("--key", default=None, help="An admin key [HELIOGRAPH_ADMIN_KEY].")(f)
    return click.option(
        "--url", default=None, help=f"The Heliograph server [HELIOGRAPH_URL, else {DEFAULT_URL}]."
    )(f)


class Api:
    """JSON calls to ``/api/v1/...`` with a bearer key."""

    def __init__(self, url: str | None, key: str | None) -> None:
        env_url, env_key = client_environment()
        self.base = (url or env_url or DEFAULT_URL).rstrip("/")
        self.key = key or env_key
        if not self.base.startswith(("http://", "https://")):
            raise click.UsageError(f"--url must be an http:// or https:// URL, not {self.base!r}")
        if not self.key:
            raise click.UsageError("give an admin key with --key or HELIOGRAPH_ADMIN_KEY")

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else orjson.dumps(body)
        request = urllib.request.Request(self.base + path, data=data, method=method)  # noqa: S310
        request.add_header("Authorization", f"Bearer {self.key}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                message = orjson.loads(raw)["error"]["message"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                message = raw[:300].decode("utf-8", "replace")
            raise ApiFailure(exc.code, str(message)) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise ApiFailure(0, f"cannot reach {self.base}: {exc}") from exc
        return orjson.loads(raw) if raw else None
