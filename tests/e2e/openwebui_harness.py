"""The real Open WebUI as a subprocess, pointed at `heliograph serve`, driven like a user.

Open WebUI lives in its own venv (``scripts/openwebui-env`` installs it: PyTorch and the rest
are far too heavy for ``.venv``), found at ``HELIOGRAPH_OPENWEBUI_VENV`` or
``~/.cache/heliograph/owui``. It is started offline (no model downloads, no update check, no
telemetry) with a scratch ``DATA_DIR``, both of its connections going through Heliograph: the
OpenAI one at ``/v1/<write-key>`` and the Ollama one at ``/ollama/<write-key>``, with user
info forwarding on and per-connection custom headers carrying the message id, task, groups and
chat id. A test then signs up (the first user is the admin), makes a group, creates chats and
chats through Open WebUI's own HTTP API, as its web page does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_harness import Heliograph, clean_environment

from conftest import IN_CI

OPENWEBUI_VERSION = "0.12.4"
START_TIMEOUT = 300.0  # a cold first start (migrations, imports) on a busy 2-core machine
API_TIMEOUT = 60.0
INSTALL_HINT = "run scripts/openwebui-env (about 6 minutes from nothing)"

# Open WebUI's placeholders, substituted per request ({{TASK}} is empty for a chat).
SESSION_HEADERS = {
    "X-OpenWebUI-Message-Id": "{{MESSAGE_ID}}",
    "X-OpenWebUI-User-Groups": "{{USER_GROUPS}}",
    "X-OpenWebUI-User-Group-Ids": "{{USER_GROUP_IDS}}",
    "X-OpenWebUI-Chat-Id": "{{CHAT_ID}}",
}
TASK_HEADER = {"X-OpenWebUI-Task": "{{TASK}}"}


def openwebui_venv() -> Path:
    """Where the venv is: the same rule as scripts/openwebui-env."""
    given = os.environ.get("HELIOGRAPH_OPENWEBUI_VENV")
    return Path(given) if given else Path.home() / ".cache" / "heliograph" / "owui"


def openwebui_problem(venv: Path) -> str | None:
    """Why Open WebUI cannot run from ``venv`` (None: it can)."""
    python, script = venv / "bin" / "python", venv / "bin" / "open-webui"
    if not python.exists() or not script.exists():
        return f"Open WebUI is not installed in {venv}"
    check = "import importlib.metadata, open_webui; print(importlib.metadata.version('open-webui'))"
    try:
        done = subprocess.run(
            [str(python), "-c", check], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        return f"importing open_webui from {venv} took over 60 s"
    if done.returncode != 0:
        return f"import open_webui fails in {venv}: {done.stderr.strip()[-500:]}"
    version = done.stdout.strip()
    if version != OPENWEBUI_VERSION:
        return f"{venv} has Open WebUI {version}, not {OPENWEBUI_VERSION}"
    return None


def require_openwebui() -> Path:
    """The venv, or the test fails (CI) or skips (elsewhere) with the reason."""
    venv = openwebui_venv()
    problem = openwebui_problem(venv)
    if problem is not None:
        message = f"{problem}; {INSTALL_HINT}"
        if IN_CI:
            pytest.fail(f"Open WebUI is required in CI: {message}")
        pytest.skip(message)
    return venv


def connection_configs(*, task_header: bool, title: str) -> str:
    """``OPENAI_API_CONFIGS`` / ``OLLAMA_API_CONFIGS`` for the one connection (index 0).

    ``X-Mock-Title`` makes the mock upstream answer Open WebUI's title prompt with
    ``{"title": title}`` (every other prompt gets the usual reply)."""
    headers = {**SESSION_HEADERS, **(TASK_HEADER if task_header else {}), "X-Mock-Title": title}
    return orjson.dumps({"0": {"enable": True, "headers": headers}}).decode()


def openwebui_environment(
    data_dir: Path,
    heliograph: Heliograph,
    *,
    openai_key: str,
    title: str,
    jwt_secret: str | None = None,
) -> dict[str, str]:
    """Everything Open WebUI needs to start offline and talk only to ``heliograph``.

    The OpenAI connection sends the ``X-OpenWebUI-Task`` header; the Ollama one does not, so
    its title request can only be recognised from Open WebUI's prompt in the body."""
    env = {
        **clean_environment(),
        "HOME": str(data_dir),  # nothing of the real home is read or written
        "DATA_DIR": str(data_dir),
        # its own copy of the static files (by default they are rewritten inside the venv on
        # every start, which two instances starting together would race on)
        "STATIC_DIR": str(data_dir / "static"),
        "WEBUI_SECRET_KEY": "heliograph-e2e-" + uuid.uuid4().hex,
        # offline: no Hugging Face downloads, no version check, no telemetry
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "DO_NOT_TRACK": "true",
        "SCARF_NO_ANALYTICS": "true",
        "ANONYMIZED_TELEMETRY": "false",
        # no local embedding model is loaded at start (an API engine is named instead; RAG is
        # never used here), no reranker, no whisper
        "RAG_EMBEDDING_ENGINE": "openai",
        "RAG_EMBEDDING_MODEL_AUTO_UPDATE": "false",
        "RAG_RERANKING_MODEL_AUTO_UPDATE": "false",
        "WHISPER_MODEL_AUTO_UPDATE": "false",
        "ENABLE_SIGNUP": "true",
        "GLOBAL_LOG_LEVEL": "INFO",
        # the two connections, through Heliograph
        "ENABLE_OPENAI_API": "true",
        "OPENAI_API_BASE_URLS": heliograph.url("v1"),
        "OPENAI_API_KEYS": openai_key,
        "OPENAI_API_CONFIGS": connection_configs(task_header=True, title=title),
        "ENABLE_OLLAMA_API": "true",
        "OLLAMA_BASE_URLS": heliograph.url("ollama"),
        "OLLAMA_API_CONFIGS": connection_configs(task_header=False, title=title),
        "ENABLE_FORWARD_USER_INFO_HEADERS": "true",
    }
    if jwt_secret is not None:
        env["FORWARD_USER_INFO_HEADER_JWT_SECRET"] = jwt_secret
    return env


class OpenWebUI:
    """``<venv>/bin/open-webui serve`` in its own process group, logging to a file."""

    def __init__(self, venv: Path, data_dir: Path, port: int, env: dict[str, str]) -> None:
        self.venv = venv
        self.data_dir = data_dir
        self.port = port
        self.env = env
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = data_dir / "open-webui.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in = 0.0
        self._t0 = 0.0

    # -- process ------------------------------------------------------------------------

    def launch(self) -> OpenWebUI:
        """Start the process; ``wait_ready`` waits for it (two can start side by side)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [str(self.venv / "bin" / "open-webui"), "serve"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=self.data_dir,  # it may write .webui_secret_key into its cwd
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._t0 = time.monotonic()
        return self

    def wait_ready(self, timeout: float = START_TIMEOUT) -> OpenWebUI:
        assert self.proc is not None, "launch() first"
        deadline = self._t0 + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Open WebUI exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.base_url + "/health", timeout=5).status_code == 200:
                    self.started_in = time.monotonic() - self._t0
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"Open WebUI was not ready within {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL what is left after 20 s."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- its HTTP API, as the web page calls it ------------------------------------------

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(
            method, self.base_url + path, headers=headers, timeout=API_TIMEOUT, **kwargs
        )

    def ok(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> Any:
        """The JSON answer of a call that must succeed (else the answer and the log tail)."""
        resp = self.call(method, path, token, **kwargs)
        assert resp.status_code == 200, (
            f"{method} {path}: {resp.status_code} {resp.text[:1000]}\n{self.log_tail(40)}"
        )
        return resp.json()

    def signup(self, name: str, email: str, password: str) -> dict[str, Any]:
        """A new account (the first one becomes the admin): its id, role and session token."""
        form = {"name": name, "email": email, "password": password}
        data: dict[str, Any] = self.ok("POST", "/api/v1/auths/signup", json=form)
        return data

    def create_group(self, token: str, name: str, user_ids: list[str]) -> dict[str, Any]:
        group = self.ok(
            "POST",
            "/api/v1/groups/create",
            token,
            json={"name": name, "description": "Heliograph end-to-end test group"},
        )
        if user_ids:
            group = self.ok(
                "POST",
                f"/api/v1/groups/id/{group['id']}/users/add",
                token,
                json={"user_ids": user_ids},
            )
        data: dict[str, Any] = group
        return data

    def model_ids(self, token: str, want: set[str], timeout: float = 60.0) -> set[str]:
        """The models ``GET /api/models`` lists, once every one of ``want`` is there."""
        deadline = time.monotonic() + timeout
        ids: set[str] = set()
        while time.monotonic() < deadline:
            ids = {m["id"] for m in self.ok("GET", "/api/models", token)["data"]}
            if want <= ids:
                return ids
            time.sleep(1)
        raise AssertionError(
            f"Open WebUI lists {sorted(ids)}, not {sorted(want)}\n{self.log_tail()}"
        )

    def new_chat(self, token: str, model: str) -> str:
        """A saved chat (a UUID id), as the page creates one before its first message."""
        chat = {
            "title": "New Chat",
            "models": [model],
            "messages": [],
            "history": {"messages": {}, "currentId": None},
            "tags": [],
            "timestamp": int(time.time() * 1000),
        }
        data = self.ok("POST", "/api/v1/chats/new", token, json={"chat": chat})
        chat_id: str = data["id"]
        return chat_id

    def chat(self, token: str, model: str, chat_id: str, text: str) -> tuple[str, dict[str, Any]]:
        """One turn of a saved chat through ``POST /api/chat/completions`` (non-streaming,
        answered in the same call): the assistant message id sent and Open WebUI's answer."""
        user_message_id, message_id = str(uuid.uuid4()), str(uuid.uuid4())
        user_message = {
            "id": user_message_id,
            "parentId": None,
            "childrenIds": [],
            "role": "user",
            "content": text,
            "timestamp": int(time.time()),
            "models": [model],
        }
        form = {
            "model": model,
            "messages": [{"role": "user", "content": text}],
            "stream": False,
            "chat_id": chat_id,
            "id": message_id,
            "user_message": user_message,
        }
        data: dict[str, Any] = self.ok("POST", "/api/chat/completions", token, json=form)
        return message_id, data

    def generate_title(
        self, token: str, model: str, chat_id: str, messages: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """``POST /api/v1/tasks/title/completions`` for the chat, as the page asks after the
        first answer."""
        form = {"model": model, "messages": messages, "chat_id": chat_id}
        data: dict[str, Any] = self.ok("POST", "/api/v1/tasks/title/completions", token, json=form)
        return data
