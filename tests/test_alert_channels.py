"""Notification channels against real receivers: aiohttp servers for the generic webhook
(signature verified), Slack and Discord formats, and a real SMTP server (aiosmtpd) that
requires STARTTLS and AUTH LOGIN, with a self-signed certificate made for the test (openssl)."""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import free_port
from heliograph.alerts import channels, definitions, signing
from heliograph.alerts.channels import SendError

SECRET = "whsec-test-0123456789abcdef"
HOSTILE = "<b>@everyone</b> & <script>x</script>"


def message(kind: str = "firing", name: str = "errors on gpt-4o") -> dict[str, Any]:
    return {
        "event_id": "ev-1",
        "kind": kind,
        "at": 1_760_000_000_000,
        "rule": {
            "id": "r-1",
            "name": name,
            "metric": "error_rate",
            "metric_label": "error rate",
            "unit": "ratio 0-1",
            "comparison": ">",
            "threshold": 0.5,
            "window": "5m",
            "filter": {"model": "gpt-4o"},
        },
        "value": 0.8,
        "request_count": 10,
        "url": "http://heliograph.test/alerts",
    }


@dataclass
class Receiver:
    url: str
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    box = Receiver(f"http://127.0.0.1:{port}/hook")

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        box.got.append((dict(request.headers), body))
        if box.delay:
            import asyncio

            await asyncio.sleep(box.delay)
        return web.Response(status=box.status, text="nope" if box.status >= 300 else "ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield box
    finally:
        await runner.cleanup()


def stored(doc: dict[str, Any]) -> dict[str, Any]:
    checked = definitions.check_channel(doc)
    return {"kind": checked["kind"], "config": checked["config"], "secrets": checked["secrets"]}


async def test_webhook_is_signed_json(receiver: Receiver) -> None:
    row = stored({"name": "h", "kind": "webhook", "url": receiver.url, "secret": SECRET})
    async with aiohttp.ClientSession() as session:
        await channels.send(row, message(), "delivery-1", session, 5.0)
    [(headers, body)] = receiver.got
    assert signing.verify(SECRET, body, headers[signing.HEADER], int(time.time()))
    assert not signing.verify(
        "another-secret-value", body, headers[signing.HEADER], int(time.time())
    )
    assert headers["Heliograph-Delivery"] == "delivery-1"
    doc = orjson.loads(body)
    assert doc["type"] == "alert.firing" and doc["state"] == "firing"
    assert doc["rule"]["name"] == "errors on gpt-4o" and doc["value"] == 0.8
    assert doc["at"] == "2025-10-09T08:53:20Z" and "error rate = 0.8" in doc["text"]


async def test_webhook_errors_and_timeouts(receiver: Receiver) -> None:
    row = stored({"name": "h", "kind": "webhook", "url": receiver.url})
    receiver.status = 503
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SendError, match="HTTP 503"):
            await channels.send(row, message(), "d", session, 5.0)
        receiver.status, receiver.delay = 200, 2.0
        started = time.monotonic()
        with pytest.raises(SendError, match=r"no answer within 0\.3 s"):
            await channels.send(row, message(), "d", session, 0.3)
        assert time.monotonic() - started < 1.5
        closed = stored({"name": "h", "kind": "webhook", "url": f"http://127.0.0.1:{free_port()}/"})
        with pytest.raises(SendError, match="could not reach"):
            await channels.send(closed, message(), "d", session, 2.0)
    assert signing.HEADER not in receiver.got[0][0]  # no secret: no signature


async def test_slack_and_discord_formats(receiver: Receiver) -> None:
    async with aiohttp.ClientSession() as session:
        slack = stored({"name": "s", "kind": "slack", "url": receiver.url})
        await channels.send(slack, message(name=HOSTILE), "d", session, 5.0)
        discord = stored({"name": "d", "kind": "discord", "url": receiver.url})
        await channels.send(discord, message("resolved", HOSTILE), "d", session, 5.0)
    slack_doc, discord_doc = (orjson.loads(body) for _, body in receiver.got)
    assert slack_doc["text"].startswith("[FIRING] &lt;b&gt;@everyone&lt;/b&gt; &amp; &lt;script")
    assert "<script>" not in orjson.dumps(slack_doc["blocks"][1]).decode()
    assert slack_doc["blocks"][0]["type"] == "header"
    assert discord_doc["content"].startswith("[RESOLVED] <b>@everyone</b>")
    assert discord_doc["allowed_mentions"] == {"parse": []}  # the name pings no one
    embed = discord_doc["embeds"][0]
    assert embed["color"] == channels.COLORS["resolved"] and embed["fields"][1]["value"] == "> 0.5"


# ---- SMTP ----------------------------------------------------------------------------------


def self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, made with the openssl command."""
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
            *("-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key)),
            *("-out", str(cert), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@dataclass
class Mailbox:
    port: int
    cert: Path
    mails: list[Any] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server(tmp_path: Path) -> Iterator[Mailbox]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    box = Mailbox(free_port(), cert)

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"alerts",
            b"pw-123",
        )
        if isinstance(data, LoginPassword):
            box.logins.append((mechanism, data.login.decode()))
        return AuthResult(success=ok, handled=False)

    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=box.port,
        tls_context=context,
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=True,
        auth_exclude_mechanism=["PLAIN"],  # smtplib would prefer PLAIN: make it speak LOGIN
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def email_channel(box: Mailbox, password: str = "pw-123") -> dict[str, Any]:
    return stored(
        {
            "name": "mail",
            "kind": "email",
            "host": "127.0.0.1",
            "port": box.port,
            "security": "starttls",
            "username": "alerts",
            "password": password,
            "from": "heliograph@example.com",
            "to": ["ops@example.com", "oncall@example.com"],
        }
    )


async def test_email_over_starttls_with_login(smtp_server: Mailbox) -> None:
    trust = ssl.create_default_context(cafile=str(smtp_server.cert))
    async with aiohttp.ClientSession() as session:
        await channels.send(email_channel(smtp_server), message(), "d", session, 10.0, trust)
    [(sender, rcpts, content)] = smtp_server.mails
    assert sender == "heliograph@example.com"
    assert rcpts == ["ops@example.com", "oncall@example.com"]
    assert smtp_server.logins == [("LOGIN", "alerts")]
    mail = message_from_bytes(content)
    assert mail["Subject"] == "[FIRING] errors on gpt-4o"
    assert "error rate = 0.8" in mail.get_payload(decode=True).decode()


async def test_email_refusals_are_clear(smtp_server: Mailbox) -> None:
    trust = ssl.create_default_context(cafile=str(smtp_server.cert))
    async with aiohttp.ClientSession() as session:
        with pytest.raises(SendError, match="SMTP login refused"):
            await channels.send(
                email_channel(smtp_server, "wrong"), message(), "d", session, 10.0, trust
            )
        # the server's certificate is not trusted by default: refused, not sent in the clear
        with pytest.raises(SendError, match="TLS error"):
            await channels.send(email_channel(smtp_server), message(), "d", session, 10.0)
    assert smtp_server.mails == []
