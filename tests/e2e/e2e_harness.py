"""`heliograph serve` as users run it, and reading back what it stored.

The server is started with the installed `heliograph` command and configured only the ways
the README documents: environment variables, a `config.toml` in its home, and flags
(`--port`, `--workers`, `--home`). No HELIOGRAPH_* variable of the test run leaks in. The keys
come from the first-start output; records are read back through the read API with the admin
key, waiting (boundedly) for the writer process to store them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import orjson
from genai_prices import Usage, calc_price

from conftest import free_port
from mock_ollama import MockOllama
from mock_upstream import MockServer, MockUpstream, Received
from serve_process import ServeProcess

RECORD_TIMEOUT = 20.0
T = TypeVar("T")


def heliograph_command() -> list[str]:
    """The console script pip installed next to this interpreter (what the README runs)."""
    script = Path(sys.executable).parent / "heliograph"
    return [str(script)] if script.exists() else [sys.executable, "-m", "heliograph"]


def clean_environment() -> dict[str, str]:
    """This process's environment without any HELIOGRAPH_* variable (nor Ollama's key)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HELIOGRAPH_") and k not in ("OLLAMA_API_KEY", "OLLAMA_HOST")
    }


class Heliograph(ServeProcess):
    """`heliograph serve --port P --workers N [--home H]` with the given environment.

    ``home_flag``: the data directory is given with ``--home`` instead of HELIOGRAPH_HOME
    (``HOME`` then points at a scratch directory, so nothing can fall back to the real
    ``~/.heliograph``).
    """

    def __init__(
        self,
        home: Path,
        port: int,
        *,
        workers: int = 1,
        env: dict[str, str] | None = None,
        home_flag: bool = False,
        user_home: Path | None = None,
    ) -> None:
        super().__init__(home, port)
        self.workers = workers
        self.home_flag = home_flag
        base = clean_environment()
        if home_flag:
            assert user_home is not None, "give a scratch HOME with home_flag"
            base["HOME"] = str(user_home)
        else:
            base["HELIOGRAPH_HOME"] = str(home)
        base["HELIOGRAPH_WRITER_POLL_INTERVAL"] = "0.02"
        self.env = {**base, **(env or {})}
        self.write_key = ""
        self.admin_key = ""

    @property
    def command(self) -> list[str]:
        args = [*heliograph_command(), "serve", "--port", str(self.port)]
        args += ["--workers", str(self.workers)]
        if self.home_flag:
            args += ["--home", str(self.home)]
        return args

    def start(self, timeout: float = 60.0) -> Heliograph:
        self.lines = []
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.pump = threading.Thread(target=self._pump, args=(self.proc,), daemon=True)
        self.pump.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.pump.join(5)
                raise RuntimeError("serve exited:\n" + self.output())
            if self._ready():
                # Printed on the first start only: a restart keeps the keys it had.
                self.write_key = self.write_key or self.key("write key")
                self.admin_key = self.admin_key or self.key("admin key")
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("serve did not become ready:\n" + self.output())

    def _ready(self) -> bool:
        """Healthy, and every worker has finished starting (they log it one by one)."""
        started = sum("Application startup complete" in line for line in list(self.lines))
        if started < self.workers:
            return False
        try:
            return httpx.get(self.base_url + "/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def output(self) -> str:
        return "\n".join(self.lines)

    # -- reading back -------------------------------------------------------------------

    def api(self, path: str, **params: Any) -> httpx.Response:
        return httpx.get(
            self.base_url + path,
            params=params,
            headers={"Authorization": f"Bearer {self.admin_key}"},
            timeout=15,
        )

    def admin_request(
        self, method: str, path: str, body: Any = None, **kwargs: Any
    ) -> httpx.Response:
        """``method path`` on the server with the admin key, ``body`` (if any) sent as JSON;
        ``kwargs`` go to ``httpx.request`` (``headers`` join the Authorization one; timeout 15 s)."""
        headers = {"Authorization": f"Bearer {self.admin_key}", **kwargs.pop("headers", {})}
        kwargs.setdefault("timeout", 15)
        return httpx.request(method, self.base_url + path, json=body, headers=headers, **kwargs)

    def record(self, rid: str, timeout: float = RECORD_TIMEOUT) -> dict[str, Any]:
        """The stored record with bodies and headers, once the writer has stored it."""
        deadline = time.monotonic() + timeout
        last: httpx.Response | None = None
        while time.monotonic() < deadline:
            last = self.api(f"/api/v1/requests/{rid}")
            if last.status_code == 200:
                data: dict[str, Any] = last.json()
                return data
            time.sleep(0.05)
        detail = f"{last.status_code} {last.text[:300]}" if last is not None else "no answer"
        raise AssertionError(
            f"record {rid} was not stored within {timeout} s ({detail})\n" + self.output()[-3000:]
        )

    def listed(self, rid: str, **filters: Any) -> dict[str, Any] | None:
        """The record as GET /api/v1/requests lists it with these filters (None: not listed)."""
        resp = self.api("/api/v1/requests", limit=1000, **filters)
        assert resp.status_code == 200, resp.text
        return next((r for r in resp.json()["data"] if r["id"] == rid), None)

    def url(self, prefix: str, key_in_path: bool = True) -> str:
        """A client base URL: ``prefix`` is "v1", "anthropic", "ollama", "groq", ..."""
        if key_in_path:
            return f"{self.base_url}/{prefix}/{self.write_key}"
        return f"{self.base_url}/{prefix}"


def admin_env(email: str, password: str) -> dict[str, str]:
    """The first dashboard admin, as the README sets it: HELIOGRAPH_ADMIN_EMAIL / _PASSWORD."""
    return {"HELIOGRAPH_ADMIN_EMAIL": email, "HELIOGRAPH_ADMIN_PASSWORD": password}


def cloud_and_ollama_env(
    cloud: MockUpstream, local: MockOllama, openai_key: str | None = None
) -> dict[str, str]:
    """README's variables for two upstreams: OpenAI at ``cloud``, declared a cloud API (so it
    is priced), with ``openai_key`` as the server's key if given; Ollama at ``local``."""
    env = {
        "HELIOGRAPH_UPSTREAM_OPENAI_URL": cloud.url,
        "HELIOGRAPH_UPSTREAM_OPENAI_LOCAL": "false",
        "HELIOGRAPH_UPSTREAM_OLLAMA_URL": local.base_url,
    }
    if openai_key is not None:
        env["HELIOGRAPH_UPSTREAM_OPENAI_API_KEY"] = openai_key
    return env


@contextlib.contextmanager
def serving(
    home: Path, env: dict[str, str] | None = None, *, workers: int = 1
) -> Iterator[Heliograph]:
    """`heliograph serve` on a free port with its data in ``home``, started for the block and
    stopped when it ends (the body of a module's ``serve`` fixture)."""
    server = Heliograph(home, free_port(), workers=workers, env=env)
    try:
        yield server.start()
    finally:
        server.stop()


class Stoppable(Protocol):
    """Anything started that a test must stop: mocks, receivers, a set of them."""

    def stop(self) -> None: ...


S = TypeVar("S", bound=Stoppable)


@contextlib.contextmanager
def stopping(started: S) -> Iterator[S]:
    """``started`` (mocks, receivers: anything already started with a ``stop()``), stopped
    when the block ends however it ends."""
    try:
        yield started
    finally:
        started.stop()


def wait_for(what: str, check: Callable[[], T], timeout: float = 30.0) -> T:
    """The first truthy answer of ``check`` (asked every 0.2 s); fails naming ``what`` when
    none came within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def new_id() -> str:
    """A request id for ``Helicone-Request-Id`` (so the test knows its record's id)."""
    return str(uuid.uuid4())


def marker() -> str:
    """A unique text to put in a prompt and find the request again at the mock (fixed length,
    so the mocks' token counts, which follow the prompt's length, stay the same)."""
    return uuid.uuid4().hex


def received(mock: MockServer, text: str, timeout: float = 10.0) -> Received:
    """The one request the mock received whose body contains ``text``."""
    deadline = time.monotonic() + timeout
    while True:
        hits = [r for r in mock.requests if text.encode() in r.body]
        if hits or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(hits) == 1, f"expected one request with {text!r} at the mock, got {len(hits)}"
    return hits[0]


def genai_cost(model: str, provider: str, prompt: int, completion: int) -> float:
    """The price the bundled genai-prices data gives, computed here independently."""
    usage = Usage(input_tokens=prompt, output_tokens=completion)
    return float(calc_price(usage, model, provider_id=provider).total_price)


def stored_text(record: dict[str, Any]) -> str:
    """Everything a record holds (bodies, headers, metadata), as one searchable text."""
    return orjson.dumps(record).decode()


def assert_never_stored(record: dict[str, Any], *secrets: str) -> None:
    text = stored_text(record)
    for secret in secrets:
        assert secret and secret not in text, f"a secret ({secret[:6]}...) is in the stored record"


# -- the dashboard ---------------------------------------------------------------------------


@contextlib.contextmanager
def dashboard_login(base_url: str, email: str, password: str) -> Iterator[httpx.Client]:
    """An httpx client logged in to the dashboard."""
    with httpx.Client(base_url=base_url, timeout=15) as web:
        page = web.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token, page.text[:500]
        resp = web.post(
            "/login", data={"email": email, "password": password, "csrf_token": token.group(1)}
        )
        assert resp.status_code == 303, resp.text[:500]
        yield web


_BADGE = re.compile(
    r">([^<>]+)</a></td>\s*<td><span class=\"badge (?:local|cloud)\">(local|cloud)</span>"
)


def model_badges(
    web: httpx.Client, want: set[str], timeout: float = RECORD_TIMEOUT
) -> dict[str, str]:
    """Model -> "local" or "cloud" as the /models page shows them, once ``want`` are listed."""
    deadline = time.monotonic() + timeout
    badges: dict[str, str] = {}
    while time.monotonic() < deadline:
        resp = web.get("/models", params={"range": "1h"})
        assert resp.status_code == 200, resp.text[:500]
        badges = dict(_BADGE.findall(resp.text))
        if want <= set(badges):
            break
        time.sleep(0.3)
    return badges


# -- which process served a connection ------------------------------------------------------


def descendants(pid: int) -> list[int]:
    found = [pid]
    for p in found:
        children = Path(f"/proc/{p}/task/{p}/children")
        try:
            found += [int(c) for c in children.read_text().split()]
        except OSError:
            continue
    return found


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """The inode of the server's end of a loopback TCP connection (from /proc/net/tcp)."""
    want_local, want_remote = f":{server_port:04X}", f":{client_port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[1].endswith(want_local) and cols[2].endswith(want_remote):
                return cols[9]
    return None


def worker_of(server: Heliograph, conn: http.client.HTTPConnection) -> int:
    """The process of the server that accepted ``conn`` (call it while the connection is open)."""
    assert conn.sock is not None
    pid = serving_pid(server, conn.sock)
    assert pid is not None, "no process of the server holds the connection"
    return pid


def post_chat(
    conn: http.client.HTTPConnection,
    server: Heliograph,
    body: bytes,
    api_key: str,
    *,
    may_close_early: bool = False,
) -> int:
    """POST ``body`` (JSON) to the OpenAI chat route, write key in the path, on ``conn``; the
    status. ``may_close_early``: the server may answer and close before the whole body is sent."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    path = f"/v1/{server.write_key}/chat/completions"
    if may_close_early:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            conn.request("POST", path, body=body, headers=headers)
    else:
        conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def answers_by_worker(
    server: Heliograph,
    ask: Callable[[http.client.HTTPConnection], tuple[int, T]],
    *,
    each: int = 2,
    timeout: float = 60.0,
    pause: float = 0.0,
) -> dict[int, list[T]]:
    """``ask`` on fresh connections until every worker process answered ``each`` times: the
    answers by worker pid. ``ask`` sends on the connection and returns (``worker_of`` the
    connection, its answer). Connections stay open until the end, so that the next one may go
    to another worker; gives up after ``timeout`` seconds (the caller asserts on what it got)."""
    seen: dict[int, list[T]] = {}
    conns: list[http.client.HTTPConnection] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conns.append(conn)
            pid, answer = ask(conn)
            seen.setdefault(pid, []).append(answer)
            if len(seen) >= server.workers and min(len(v) for v in seen.values()) >= each:
                break
            time.sleep(pause)
    finally:
        for conn in conns:
            conn.close()
    return seen


def serving_pid(server: Heliograph, sock: socket.socket) -> int | None:
    """The process (of the server's tree) holding the accepted end of ``sock``."""
    inode = _socket_inode(server.port, sock.getsockname()[1])
    if inode is None or server.proc is None:
        return None
    target = f"socket:[{inode}]"
    for pid in descendants(server.proc.pid):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None
