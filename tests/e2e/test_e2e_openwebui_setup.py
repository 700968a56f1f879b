"""`heliograph openwebui` and the connection check, as users run them.

`heliograph serve` runs configured by its home's `config.toml` (upstream, the server-side
provider key, the Open WebUI JWT secret) and environment variables (the admin account).
The installed `heliograph openwebui` reads the same home and prints Open WebUI's settings:
bash sources them, the JSON parses, the docker line splits into the same variables, and the
secret appears only with `--show-secret`. Then the printed settings are used the way Open WebUI
uses them - base URL and key from `OPENAI_API_BASE_URLS` / `OPENAI_API_KEYS`, the custom headers
from `OPENAI_API_CONFIGS` with their placeholders filled in, a user JWT signed with the printed
secret - through the `openai` SDK, along with a request that carries only plain user headers.
An admin logged in to the dashboard finds both on /settings/openwebui with the right verdicts.
"""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import openai
import pytest
from e2e_harness import Heliograph, clean_environment, dashboard_login, heliograph_command, new_id
from markupsafe import escape

from conftest import free_port
from mock_upstream import MockUpstream

pytestmark = pytest.mark.slow

SECRET = "e2e-openwebui-setup-secret-0123456789abcdef"
SERVER_KEY = "sk-proj-setup-serverside-0123456789abcdef"
ADMIN_EMAIL = "setup@example.com"
ADMIN_PASSWORD = "e2e setup correct horse battery"
CHECK_TIMEOUT = 20.0
# What Open WebUI fills the custom headers' placeholders with for one chat message.
FILLED = {
    "{{CHAT_ID}}": "1f0e6a1c-chat",
    "{{MESSAGE_ID}}": "msg-42",
    "{{TASK}}": "",
    "{{USER_GROUPS}}": "Research",
    "{{USER_GROUP_IDS}}": "g-research",
}


class Setup:
    def __init__(self, home: Path, mock: MockUpstream, server: Heliograph) -> None:
        self.home, self.mock, self.server = home, mock, server

    def run(self, *args: str) -> str:
        """The installed `heliograph openwebui`, configured only by the home's config.toml."""
        env = {**clean_environment(), "HELIOGRAPH_HOME": str(self.home)}
        done = subprocess.run(
            [*heliograph_command(), "openwebui", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    mock = MockUpstream().start()
    home = tmp_path_factory.mktemp("openwebui-setup-home")
    port = free_port()
    (home / "config.toml").write_text(
        f"port = {port}\n"
        f'openwebui_jwt_secret = "{SECRET}"\n'
        "[upstreams.openai]\n"
        f'url = "{mock.url}"\n'
        f'api_key = "{SERVER_KEY}"\n'
        "local = false\n"
    )
    env = {"HELIOGRAPH_ADMIN_EMAIL": ADMIN_EMAIL, "HELIOGRAPH_ADMIN_PASSWORD": ADMIN_PASSWORD}
    server = Heliograph(home, port, env=env)
    try:
        server.start()
        yield Setup(home, mock, server)
    finally:
        server.stop()
        mock.stop()


def sourced(text: str, tmp_path: Path) -> dict[str, str]:
    path = tmp_path / "openwebui.env"
    path.write_text(text)
    script = 'set -a; source "$1"; set +a; python3 -c "import json, os; print(json.dumps(dict(os.environ)))"'
    done = subprocess.run(
        ["bash", "-c", script, "bash", str(path)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        check=True,
    )
    env: dict[str, str] = json.loads(done.stdout)
    names = [line.split("=", 1)[0] for line in text.splitlines() if line[:1].isalpha()]
    return {name: env[name] for name in names}


def test_printed_settings(setup: Setup, tmp_path: Path) -> None:
    server = setup.server
    printed = setup.run("--key", server.write_key)
    assert SECRET not in printed
    env = sourced(printed, tmp_path)
    assert env["OPENAI_API_BASE_URLS"] == server.url("v1")
    assert env["OPENAI_API_KEYS"] == server.write_key  # the server holds the provider key
    assert env["OLLAMA_BASE_URLS"] == server.url("ollama")
    assert env["ENABLE_FORWARD_USER_INFO_HEADERS"] == "true"
    assert env["FORWARD_USER_INFO_HEADER_JWT_SECRET"] == "<HELIOGRAPH_OPENWEBUI_JWT_SECRET>"
    for name in ("OPENAI_API_CONFIGS", "OLLAMA_API_CONFIGS"):
        headers = json.loads(env[name])["0"]["headers"]
        assert headers["X-OpenWebUI-Task"] == "{{TASK}}"
        assert set(headers) == {f"X-OpenWebUI-{h}" for h in ("Chat-Id", "Message-Id", "Task")} | {
            "X-OpenWebUI-User-Groups",
            "X-OpenWebUI-User-Group-Ids",
        }
    assert str(setup.home / "config.toml") in printed  # where the secret is

    shown = sourced(setup.run("--key", server.write_key, "--show-secret"), tmp_path)
    assert shown["FORWARD_USER_INFO_HEADER_JWT_SECRET"] == SECRET
    assert {k: v for k, v in shown.items() if "SECRET" not in k} == {
        k: v for k, v in env.items() if "SECRET" not in k
    }

    doc = json.loads(setup.run("--format", "json"))
    assert doc["env"]["OPENAI_API_BASE_URLS"] == f"{server.base_url}/v1/<write-key>"
    assert doc["jwt_secret"]["configured"] is True and doc["jwt_secret"]["shown"] is False

    docker = setup.run("--format", "docker", "--key", server.write_key)
    command = " ".join(
        line.rstrip("\\").strip() for line in docker.splitlines() if not line.startswith("#")
    )
    words = shlex.split(command)
    assert words[:2] == ["docker", "run"]
    values = dict(w.split("=", 1) for p, w in itertools.pairwise(words) if p == "-e")
    assert values["OPENAI_API_BASE_URLS"] == (
        f"http://host.docker.internal:{server.port}/v1/{server.write_key}"
    )
    assert values["OPENAI_API_CONFIGS"] == env["OPENAI_API_CONFIGS"]


def openwebui_request(env: dict[str, str], rid: str, user: dict[str, str]) -> None:
    """One chat request made the way Open WebUI makes it from these settings."""
    custom = json.loads(env["OPENAI_API_CONFIGS"])["0"]["headers"]
    headers = {}
    for name, template in custom.items():
        value = template
        for placeholder, filled in FILLED.items():
            value = value.replace(placeholder, filled)
        headers[name] = value
    client = openai.OpenAI(
        base_url=env["OPENAI_API_BASE_URLS"].split(";")[0],
        api_key=env["OPENAI_API_KEYS"].split(";")[0],
        default_headers={**headers, **user, "Helicone-Request-Id": rid},
        max_retries=0,
    )
    reply = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello from open webui"}]
    )
    assert reply.choices[0].message.content


def user_jwt(secret: str) -> str:
    now = int(time.time())
    claims = {"sub": "u-ada", "email": "ada@example.com", "name": "Ada", "role": "user"}
    return jwt.encode({**claims, "iat": now, "exp": now + 300}, secret, algorithm="HS256")


def check_page(web: httpx.Client, *rids: str, **params: str) -> str:
    deadline = time.monotonic() + CHECK_TIMEOUT
    text = ""
    while time.monotonic() < deadline:
        resp = web.get("/settings/openwebui", params=params)
        assert resp.status_code == 200, resp.text[:500]
        text = resp.text
        if all(f'<tr data-id="{rid}">' in text for rid in rids):
            return text
        time.sleep(0.2)
    raise AssertionError(f"{rids} not on the connection check:\n{text[-3000:]}")


def row_of(html: str, rid: str) -> str:
    start = html.index(f'<tr data-id="{rid}">')
    return html[start : html.index("</tr>", start)]


def test_connection_check_lists_what_arrived(setup: Setup, tmp_path: Path) -> None:
    server = setup.server
    env = sourced(setup.run("--key", server.write_key, "--show-secret"), tmp_path)
    signed, plain = new_id(), new_id()
    secret = env["FORWARD_USER_INFO_HEADER_JWT_SECRET"]
    openwebui_request(env, signed, {"X-OpenWebUI-User-Jwt": user_jwt(secret)})
    # an Open WebUI without the secret sends plain user headers: ignored here
    plain_user = {"X-OpenWebUI-User-Id": "u-mallory", "X-OpenWebUI-User-Email": "m@example.com"}
    openwebui_request(env, plain, plain_user)
    # the provider got the server's key, never the write key Open WebUI sent as its API key
    for got in setup.mock.requests:
        assert got.headers.get("authorization") == f"Bearer {SERVER_KEY}"
    with dashboard_login(server.base_url, ADMIN_EMAIL, ADMIN_PASSWORD) as web:
        page = check_page(web, signed, plain)
        assert SECRET not in page
        good = row_of(page, signed)
        assert "all set" in good and "u-ada" in good and "msg-42" in good
        ignored = row_of(page, plain)
        assert "Plain user headers while a JWT secret is set: they are ignored" in ignored
        summary = page[page.index('id="openwebui-verdict"') : page.index('id="openwebui-check"')]
        assert "Plain user headers while a JWT secret is set" in summary  # the newest chat
        assert str(escape(server.url("v1").replace(server.write_key, "<write-key>"))) in page
        assert SECRET in check_page(web, signed, secret="1")  # an admin who asks
