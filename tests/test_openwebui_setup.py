"""Open WebUI setup: ``heliograph openwebui`` and the /settings/openwebui page.

The command's output must be copy-pasteable (env lines bash sources, valid JSON, a docker
line that splits into the same variables), in the shapes Open WebUI 0.12 reads, with the JWT
secret only on request. The page shows the same settings and checks the latest requests that
came from Open WebUI, made here through the in-process gateway with the headers Open WebUI
sends: what came, what is missing, and what to change. Header values are the client's and must
come out escaped.
"""

from __future__ import annotations

import itertools
import json
import shlex
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from click.testing import CliRunner, Result
from markupsafe import escape
from pydantic import SecretStr

from conftest import LiveGateway, gateway_settings
from heliograph.cli.main import cli
from heliograph.config import Settings
from heliograph.store.engine import make_engine
from heliograph.store.openwebui import recent_openwebui_requests
from heliograph.web import openwebui_page as verdicts
from heliograph.web.openwebui_setup import CUSTOM_HEADERS, SECRET_PLACEHOLDER, build_setup
from mock_upstream import MockUpstream
from web_support import WebClient, add_user

SECRET = "open-webui-shared-secret-0123456789abcdef"
WRITE_KEY = "hg_" + "k" * 40
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
HOSTILE = '"><script>alert(1)</script>'


# -- the command ---------------------------------------------------------------------------


def run(home: Path, *args: str, **env: str) -> Result:
    environ = {"HELIOGRAPH_HOME": str(home), **env}
    result = CliRunner().invoke(cli, ["openwebui", *args], env=environ, catch_exceptions=False)
    return result


def sourced(text: str, tmp_path: Path) -> dict[str, str]:
    """What ``set -a; source FILE`` gives bash: every variable the file sets."""
    path = tmp_path / "openwebui.env"
    path.write_text(text)
    script = (
        'set -a; source "$1"; set +a; '
        'python3 -c "import json, os; print(json.dumps(dict(os.environ)))"'
    )
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


def docker_env(text: str) -> tuple[list[str], dict[str, str]]:
    """The ``docker run`` command's words and its ``-e`` variables."""
    command = " ".join(
        line.rstrip("\\").strip() for line in text.splitlines() if not line.startswith("#")
    )
    words = shlex.split(command)
    env = dict(w.split("=", 1) for prev, w in itertools.pairwise(words) if prev == "-e")
    return words, env


def openwebui_reads(env: dict[str, str], kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(url, key, config) per connection, parsed the way Open WebUI 0.12.4 does
    (config.py: split on ';', strip; routers: ``configs.get(str(idx), configs.get(url, {}))``)."""
    if kind == "openai":
        urls = [u.strip() for u in env["OPENAI_API_BASE_URLS"].split(";")]
        keys = [k.strip() for k in env["OPENAI_API_KEYS"].split(";")]
        configs = json.loads(env["OPENAI_API_CONFIGS"])
    else:
        urls = [u.strip() for u in env["OLLAMA_BASE_URLS"].split(";")]
        keys = [""] * len(urls)
        configs = json.loads(env["OLLAMA_API_CONFIGS"])
    assert isinstance(configs, dict)
    return [
        (u, k, configs.get(str(i), configs.get(u, {})))
        for i, (u, k) in enumerate(zip(urls, keys, strict=True))
    ]


def test_env_format_sources_in_bash_in_open_webui_shapes(tmp_path: Path) -> None:
    result = run(tmp_path, HELIOGRAPH_UPSTREAM_OPENAI_API_KEY="sk-server-side-0123456789abcdef")
    assert result.exit_code == 0, result.output
    env = sourced(result.output, tmp_path)
    assert env["ENABLE_FORWARD_USER_INFO_HEADERS"] == "true"
    assert "FORWARD_USER_INFO_HEADER_JWT_SECRET" not in env  # no secret configured here
    (openai,) = openwebui_reads(env, "openai")
    assert openai[0] == "http://127.0.0.1:8787/v1/<write-key>"
    # the server holds the provider key: the write key goes in the key slot (never a made-up
    # value, which would be forwarded to the provider in place of the server's key)
    assert openai[1] == "<write-key>"
    assert openai[2] == {"enable": True, "headers": CUSTOM_HEADERS}
    (ollama,) = openwebui_reads(env, "ollama")
    assert ollama[0] == "http://127.0.0.1:8787/ollama/<write-key>"
    assert ollama[2] == {"enable": True, "headers": CUSTOM_HEADERS}
    assert set(CUSTOM_HEADERS) == {
        "X-OpenWebUI-Chat-Id",
        "X-OpenWebUI-Message-Id",
        "X-OpenWebUI-Task",
        "X-OpenWebUI-User-Groups",
        "X-OpenWebUI-User-Group-Ids",
    }
    out = result.output
    assert "heliograph keys create --name open-webui --scope write" in out
    assert "Admin Panel → Settings → Connections" in out and "# 1. " in out
    assert "ENABLE_PERSISTENT_CONFIG" in out  # env vars only count on a first start


def test_key_and_provider_key_slots(tmp_path: Path) -> None:
    result = run(tmp_path, "--key", WRITE_KEY)
    assert result.exit_code == 0, result.output
    env = sourced(result.output, tmp_path)
    (openai,) = openwebui_reads(env, "openai")
    assert openai[0] == f"http://127.0.0.1:8787/v1/{WRITE_KEY}"
    assert openai[1] == "<openai-api-key>"  # no server key for api.openai.com: the user's own
    assert "<write-key>" not in "\n".join(f"{k}={v}" for k, v in env.items())
    bad = CliRunner().invoke(cli, ["openwebui", "--key", "sk-proj-not-ours"])
    assert bad.exit_code == 2 and "not a Heliograph key" in bad.output


def test_every_configured_upstream_gets_a_connection(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'public_url = "https://llm.example.com/"\n'
        '[upstreams.groq]\napi_key = "gsk_server_side_0123456789abcdef"\n'
        '[upstreams.gpu-box]\nurl = "http://10.0.0.5:11434"\nprotocol = "ollama"\n'
        '[upstreams.claude]\nurl = "https://api.anthropic.com"\nprotocol = "anthropic"\n'
        '[upstreams.ollama]\nurl = "http://ollama:11434"\n'
    )
    result = run(tmp_path, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    env = doc["env"]
    openai = openwebui_reads(env, "openai")
    assert [c[0] for c in openai] == [
        "https://llm.example.com/v1/<write-key>",
        "https://llm.example.com/groq/<write-key>",
    ]
    assert [c[1] for c in openai] == ["<openai-api-key>", "<write-key>"]
    assert all(c[2] == {"enable": True, "headers": CUSTOM_HEADERS} for c in openai)
    ollama = openwebui_reads(env, "ollama")
    assert [c[0] for c in ollama] == [
        "https://llm.example.com/ollama/<write-key>",
        "https://llm.example.com/gpu-box/<write-key>",
    ]
    assert set(doc["openai_api_configs"]) == {"0", "1"} == set(doc["ollama_api_configs"])
    assert not any("claude" in c["url"] for c in doc["connections"])  # not an Open WebUI path
    assert doc["write_key_given"] is False and doc["steps"] and doc["notes"]


@pytest.mark.parametrize("fmt", ["env", "json", "docker"])
def test_secret_only_with_show_secret(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "config.toml").write_text(f'openwebui_jwt_secret = "{SECRET}"\n')
    hidden = run(tmp_path, "--format", fmt)
    assert hidden.exit_code == 0, hidden.output
    assert SECRET not in hidden.output
    assert SECRET_PLACEHOLDER in hidden.output
    assert str(tmp_path / "config.toml") in hidden.output  # says where the secret is set
    shown = run(tmp_path, "--format", fmt, "--show-secret")
    assert SECRET in shown.output
    if fmt == "env":
        assert sourced(shown.output, tmp_path)["FORWARD_USER_INFO_HEADER_JWT_SECRET"] == SECRET
        assert sourced(hidden.output, tmp_path)["FORWARD_USER_INFO_HEADER_JWT_SECRET"] == (
            SECRET_PLACEHOLDER
        )
    elif fmt == "json":
        doc = json.loads(shown.output)
        assert doc["env"]["FORWARD_USER_INFO_HEADER_JWT_SECRET"] == SECRET
        assert doc["jwt_secret"] == {
            "configured": True,
            "shown": True,
            "where": doc["jwt_secret"]["where"],
        }
        assert json.loads(hidden.output)["jwt_secret"]["shown"] is False
    else:
        assert docker_env(shown.output)[1]["FORWARD_USER_INFO_HEADER_JWT_SECRET"] == SECRET


def test_docker_line_splits_into_the_same_variables(tmp_path: Path) -> None:
    result = run(tmp_path, "--format", "docker", "--key", WRITE_KEY)
    assert result.exit_code == 0, result.output
    words, env = docker_env(result.output)
    assert words[:2] == ["docker", "run"] and words[-1] == "ghcr.io/open-webui/open-webui:main"
    # Heliograph on the host's loopback: the container reaches it as host.docker.internal
    assert "--add-host=host.docker.internal:host-gateway" in words
    settings = Settings(home=tmp_path)
    assert env == build_setup(settings, key=WRITE_KEY, docker=True).env()
    assert env["OPENAI_API_BASE_URLS"] == f"http://host.docker.internal:8787/v1/{WRITE_KEY}"
    assert json.loads(env["OLLAMA_API_CONFIGS"])["0"]["headers"] == CUSTOM_HEADERS
    assert "--host 0.0.0.0" in result.output  # it listens on 127.0.0.1 only: say so


def test_home_flag_wins_over_the_environment(tmp_path: Path) -> None:
    flagged, other = tmp_path / "flagged", tmp_path / "other"
    flagged.mkdir()
    other.mkdir()
    (flagged / "config.toml").write_text('public_url = "http://flagged.example:9000"\n')
    (other / "config.toml").write_text('public_url = "http://other.example:9000"\n')
    result = run(other, "--home", str(flagged), "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["base_url"] == "http://flagged.example:9000"
    flag = run(other, "--public-url", "http://cli.example:1/", "--format", "json")
    assert json.loads(flag.output)["base_url"] == "http://cli.example:1"


# -- the page ------------------------------------------------------------------------------


def start(tmp_path: Path, mock: MockUpstream, db: str | None = None, **extra: Any) -> LiveGateway:
    mock.reset()
    url = db or f"sqlite:///{tmp_path / 'gw.db'}"
    return LiveGateway(gateway_settings(tmp_path, url, mock.url, **extra)).start()


@pytest.fixture
def plain_gw(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    gw = start(tmp_path, mock)
    try:
        yield gw
    finally:
        gw.stop()


@pytest.fixture
def signed_gw(tmp_path: Path, mock: MockUpstream) -> Iterator[LiveGateway]:
    gw = start(tmp_path, mock, openwebui_jwt_secret=SecretStr(SECRET))
    try:
        yield gw
    finally:
        gw.stop()


def user_headers(user: str = "u-1", name: str = "Ada Lovelace") -> dict[str, str]:
    """What Open WebUI sends with ENABLE_FORWARD_USER_INFO_HEADERS=true and no JWT secret."""
    return {
        "x-openwebui-user-id": user,
        "x-openwebui-user-name": urllib.parse.quote(name, safe=" "),
        "x-openwebui-user-email": "ada@example.com",
        "x-openwebui-user-role": "user",
    }


def custom_headers(task: str = "", chat: str = "chat-1") -> dict[str, str]:
    """The five custom headers, as Open WebUI fills them in for a chat."""
    return {
        "x-openwebui-chat-id": chat,
        "x-openwebui-message-id": "msg-1",
        "x-openwebui-task": task,
        "x-openwebui-user-groups": "Research,Ops",
        "x-openwebui-user-group-ids": "g-1,g-2",
    }


def signed(secret: str = SECRET) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": "u-jwt", "email": "j@example.com", "name": "Jay", "role": "user"}
    token = jwt.encode({**claims, "iat": now, "exp": now + 300}, secret, algorithm="HS256")
    return {"x-openwebui-user-jwt": token}


def chat(gw: LiveGateway, headers: dict[str, str], status: int = 200) -> str:
    resp = httpx.post(
        f"{gw.openai_url}/chat/completions",
        json=CHAT,
        headers={"authorization": "Bearer sk-test", **headers},
        timeout=15,
    )
    assert resp.status_code == status, resp.text
    return resp.headers["heliograph-id"]


def models(gw: LiveGateway, headers: dict[str, str]) -> str:
    resp = httpx.get(
        f"{gw.openai_url}/models", headers={"authorization": "Bearer sk-test", **headers}
    )
    assert resp.status_code == 200, resp.text
    return resp.headers["heliograph-id"]


def row_of(html: str, rid: str) -> str:
    start = html.index(f'<tr data-id="{rid}">')
    return html[start : html.index("</tr>", start)]


def page(gw: LiveGateway, email: str = "admin@example.com", **params: str) -> str:
    with WebClient(gw, email) as web:
        resp = web.get("/settings/openwebui", **params)
        assert resp.status_code == 200, resp.text[:500]
        return resp.text


def test_check_without_a_secret(plain_gw: LiveGateway) -> None:
    gw = plain_gw
    add_user(gw, "admin@example.com")
    empty = page(gw)
    assert 'id="openwebui-empty"' in empty and "No request from Open WebUI yet" in empty
    assert "/v1/&lt;write-key&gt;" in empty and "X-OpenWebUI-Task" in empty
    ids = {
        "complete": chat(gw, {**user_headers(), **custom_headers()}),
        "bare": chat(gw, user_headers()),
        "anonymous": chat(gw, {"x-openwebui-chat-id": "chat-2"}),
        "models": models(gw, user_headers()),
        "signed": chat(gw, {**signed(), **custom_headers(task="title_generation")}),
        "other": chat(gw, {}),  # no Open WebUI header: not listed
    }
    gw.wait_records(6)
    html = page(gw)
    assert "openwebui-empty" not in html
    assert ids["other"] not in html
    assert "all set" in row_of(html, ids["complete"])
    bare = row_of(html, ids["bare"])
    for problem in (
        verdicts.NO_TASK,
        verdicts.NO_MESSAGE_ID,
        verdicts.NO_CHAT_ID,
        verdicts.NO_GROUPS,
    ):
        assert _escaped(problem) in bare
    assert "No X-OpenWebUI-Task header: task costs are recognised from prompts only" in bare
    assert _escaped(verdicts.NO_IDENTITY) in row_of(html, ids["anonymous"])
    assert "all set" in row_of(html, ids["models"])  # a model list has no chat to tell
    signed_row = row_of(html, ids["signed"])
    assert _escaped(verdicts.JWT_UNVERIFIED) in signed_row and "title_generation" in signed_row
    # the summary speaks of the newest chat request (the signed one)
    summary = html[html.index('id="openwebui-verdict"') : html.index('id="openwebui-check"')]
    assert _escaped(verdicts.JWT_UNVERIFIED) in summary


def _escaped(text: str) -> str:
    return str(escape(text))


def test_check_with_a_secret(signed_gw: LiveGateway) -> None:
    gw = signed_gw
    add_user(gw, "admin@example.com")
    ids = {
        "good": chat(gw, {**signed(), **custom_headers()}),
        "plain": chat(gw, {**user_headers(), **custom_headers()}),
        "forged": chat(gw, {**signed("another-secret-0123456789abcdefghij")}, status=401),
        "nothing": chat(gw, custom_headers()),
    }
    gw.wait_records(4)
    html = page(gw)
    assert "all set" in row_of(html, ids["good"])
    assert _escaped(verdicts.PLAIN_IGNORED) in row_of(html, ids["plain"])
    assert "Plain user headers while a JWT secret is set: they are ignored" in html
    assert _escaped(verdicts.JWT_REFUSED) in row_of(html, ids["forged"])
    assert _escaped(verdicts.NO_JWT) in row_of(html, ids["nothing"])
    assert "JWT secret set here but Open WebUI sends no JWT" in html


def test_secret_for_admins_who_ask_never_for_viewers(signed_gw: LiveGateway) -> None:
    gw = signed_gw
    add_user(gw, "admin@example.com")
    add_user(gw, "viewer@example.com", role="viewer")
    admin = page(gw)
    assert SECRET not in admin and _escaped(SECRET_PLACEHOLDER) in admin
    assert 'href="/settings/openwebui?secret=1#setup"' in admin
    assert SECRET in page(gw, secret="1")
    viewer = page(gw, "viewer@example.com", secret="1")
    assert SECRET not in viewer and "Only admins can see it." in viewer
    assert "?secret=1" not in viewer


def test_hostile_header_values_are_escaped(plain_gw: LiveGateway) -> None:
    gw = plain_gw
    add_user(gw, "admin@example.com")
    hostile = {
        **user_headers(user=HOSTILE, name=HOSTILE),
        "x-openwebui-chat-id": HOSTILE,
        "x-openwebui-message-id": urllib.parse.quote(HOSTILE),  # Open WebUI percent-encodes
        "x-openwebui-task": "<img src=x onerror=alert(2)>",
        "x-openwebui-user-groups": HOSTILE,
        "x-openwebui-auth-type": "<b>jwt</b>",
    }
    rid = chat(gw, hostile)
    gw.wait_records(1)
    html = page(gw)
    row = row_of(html, rid)
    assert "<script>" not in html and "<img" not in html and "<b>jwt" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in row
    assert "&lt;img src=x onerror=alert(2)&gt;" in row


def test_organizations_see_only_their_own(plain_gw: LiveGateway) -> None:
    gw = plain_gw
    add_user(gw, "admin@example.com")
    add_user(gw, "b@example.com", org_id=gw.other.id)
    rid = chat(gw, user_headers())
    gw.wait_records(1)
    assert rid in page(gw)
    other = page(gw, "b@example.com")
    assert rid not in other and 'id="openwebui-empty"' in other
    with WebClient(gw, "admin@example.com") as web:
        settings = web.get("/settings").text
        assert 'href="/settings/openwebui"' in settings
    with httpx.Client(base_url=gw.base_url) as anon:
        assert anon.get("/settings/openwebui").status_code == 303


def test_store_query_on_both_dialects(gateway_any: LiveGateway) -> None:
    """The JSON text match and the bounds, on SQLite and PostgreSQL."""
    gw = gateway_any
    first = chat(gw, user_headers())
    second = chat(gw, {**user_headers(), **custom_headers()})
    # the newest: Open WebUI's header names only inside a value (not from Open WebUI)
    chat(gw, {"x-something-else": '["x-openwebui-user-id","forged"]'})
    gw.wait_records(3)
    engine = make_engine(gw.settings.sqlalchemy_url)
    try:
        found = recent_openwebui_requests
        rows = found(engine, gw.org.id)
        assert [r["id"] for r in rows] == [second, first]
        assert ("x-openwebui-task", "") in rows[0]["headers"]  # an empty value still came
        assert [r["id"] for r in found(engine, gw.org.id, limit=1)] == [second]
        assert found(engine, gw.org.id, scan=1) == []  # only the newest request looked at
        assert [r["id"] for r in found(engine, gw.org.id, scan=2)] == [second]
        assert found(engine, gw.other.id) == []
    finally:
        engine.dispose()
