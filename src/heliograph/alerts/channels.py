"""Notification channels: how one alert message is rendered and sent to each kind.

* ``webhook``: the message as JSON, signed with the channel's secret (``alerts.signing``:
  header ``Heliograph-Signature: t=<unix>,v1=<hmac>``), with ``Heliograph-Delivery`` (the
  notification id, for receivers to drop a repeat);
* ``slack``: an incoming webhook's ``{"text", "blocks"}``, text escaped for Slack's mrkdwn;
* ``discord``: a webhook's ``{"content", "embeds"}`` with mentions disabled, so a rule name
  cannot ping ``@everyone``;
* ``email``: a plain-text message over SMTP (STARTTLS on 587 by default, implicit TLS, or
  none for a local relay) with login, through the standard library's ``smtplib`` in a thread.

Every send has a timeout; a non-2xx answer or any error raises ``SendError`` with a short,
secret-free reason (the outbox retries it with backoff, the test button shows it). Bodies of
answers are read up to ``MAX_ANSWER`` bytes only.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import aiohttp
import orjson

from heliograph.alerts import signing

MAX_ANSWER = 2048
USER_AGENT = "Heliograph-Alerts/1"


class SendError(Exception):
    """A notification that did not arrive; the message is safe to show and store."""


def _number(value: float | None) -> str:
    if value is None:
        return "no value"
    return f"{value:.4g}" if abs(value) < 1e6 else f"{value:,.0f}"


def summary(msg: dict[str, Any]) -> tuple[str, str]:
    """(title, one-line detail) of a message, in plain text."""
    rule = msg["rule"]
    state = {"firing": "FIRING", "resolved": "RESOLVED", "test": "TEST"}.get(msg["kind"], "ALERT")
    title = f"[{state}] {rule['name']}"
    scope = ", ".join(f"{k}={v}" for k, v in sorted(rule["filter"].items()))
    count = msg.get("request_count")
    detail = (
        f"{rule['metric_label']} = {_number(msg['value'])} {rule['unit']} "
        f"(alert when {rule['comparison']} {_number(rule['threshold'])}) over the last "
        f"{rule['window']}"
        + (f", {count} requests" if count is not None else "")
        + (f"; filter {scope}" if scope else "")
    )
    return title, detail


def when(msg: dict[str, Any]) -> str:
    return datetime.fromtimestamp(msg["at"] / 1000, UTC).isoformat().replace("+00:00", "Z")


def webhook_body(msg: dict[str, Any], delivery: str) -> dict[str, Any]:
    title, detail = summary(msg)
    return {
        "type": f"alert.{msg['kind']}",
        "delivery_id": delivery,
        "event_id": msg["event_id"],
        "state": msg["kind"],
        "at": when(msg),
        "rule": msg["rule"],
        "value": msg["value"],
        "request_count": msg["request_count"],
        "title": title,
        "text": detail,
        "url": msg["url"],
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(msg: dict[str, Any]) -> dict[str, Any]:
    title, detail = summary(msg)
    text = f"{_slack_escape(title)}: {_slack_escape(detail)}"
    return {
        "text": text,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(detail)}},
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"{when(msg)} · <{msg['url']}|Heliograph alerts>"}
                ],
            },
        ],
    }


COLORS = {"firing": 0xD93025, "resolved": 0x188038, "test": 0x1A73E8}


def discord_body(msg: dict[str, Any]) -> dict[str, Any]:
    title, detail = summary(msg)
    return {
        "content": title[:2000],
        "embeds": [
            {
                "title": title[:256],
                "description": detail[:4096],
                "url": msg["url"],
                "color": COLORS.get(msg["kind"], 0x5F6368),
                "timestamp": when(msg),
                "fields": [
                    {"name": "Value", "value": _number(msg["value"]), "inline": True},
                    {
                        "name": "Threshold",
                        "value": f"{msg['rule']['comparison']} {_number(msg['rule']['threshold'])}",
                        "inline": True,
                    },
                ],
            }
        ],
        "allowed_mentions": {"parse": []},
    }


def email_message(msg: dict[str, Any], config: dict[str, Any]) -> EmailMessage:
    title, detail = summary(msg)
    mail = EmailMessage()
    mail["Subject"] = title[:200]
    mail["From"] = config["from"]
    mail["To"] = ", ".join(config["to"])
    mail.set_content(f"{title}\n\n{detail}\n\nAt {when(msg)}.\n{msg['url']}\n")
    return mail


async def _post(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> None:
    try:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as answer:
            text = (await answer.content.read(MAX_ANSWER)).decode("utf-8", "replace")
            if not 200 <= answer.status < 300:
                raise SendError(f"HTTP {answer.status}: {text[:200]}")
    except TimeoutError as exc:
        raise SendError(f"no answer within {timeout_s:g} s") from exc
    except aiohttp.ClientError as exc:
        raise SendError(f"could not reach the receiver: {type(exc).__name__}") from exc


def _smtp_send(
    config: dict[str, Any],
    password: str | None,
    mail: EmailMessage,
    timeout: float,
    context: ssl.SSLContext | None,
) -> None:
    context = context or ssl.create_default_context()
    host, port, security = config["host"], config["port"], config["security"]
    try:
        smtp: smtplib.SMTP
        if security == "tls":
            smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            smtp.ehlo()
            if security == "starttls":
                smtp.starttls(context=context)
                smtp.ehlo()
            if config.get("username"):
                smtp.login(config["username"], password or "")
            smtp.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        raise SendError(f"SMTP login refused ({exc.smtp_code})") from exc
    except smtplib.SMTPException as exc:
        raise SendError(f"SMTP error: {type(exc).__name__}: {str(exc)[:200]}") from exc
    except ssl.SSLError as exc:
        raise SendError(f"TLS error: {exc.reason or exc}") from exc
    except OSError as exc:
        raise SendError(f"could not reach {host}:{port}: {exc.strerror or exc}") from exc


async def send(
    channel: dict[str, Any],
    msg: dict[str, Any],
    delivery: str,
    session: aiohttp.ClientSession,
    timeout_s: float,
    ssl_context: ssl.SSLContext | None = None,
) -> None:
    """Deliver ``msg`` through ``channel`` (a stored row: kind, config, secrets) once."""
    kind, config, secrets = channel["kind"], channel["config"], channel["secrets"]
    timeout = float(config.get("timeout_s") or timeout_s)
    if kind == "email":
        mail = email_message(msg, config)
        await asyncio.to_thread(
            _smtp_send, config, secrets.get("password"), mail, timeout, ssl_context
        )
        return
    if kind == "webhook":
        body = orjson.dumps(webhook_body(msg, delivery))
        headers = {"Heliograph-Delivery": delivery, "Heliograph-Event": f"alert.{msg['kind']}"}
        if secrets.get("secret"):
            headers[signing.HEADER] = signing.signature(secrets["secret"], body, int(time.time()))
        await _post(session, config["url"], body, headers, timeout)
    elif kind == "slack":
        await _post(session, secrets["url"], orjson.dumps(slack_body(msg)), {}, timeout)
    elif kind == "discord":
        await _post(session, secrets["url"], orjson.dumps(discord_body(msg)), {}, timeout)
    else:
        raise SendError(f"unknown channel kind {kind!r}")


def test_message(channel_name: str, base_url: str, at: int) -> dict[str, Any]:
    """What the "send test notification" button sends."""
    return {
        "event_id": "test",
        "kind": "test",
        "at": at,
        "rule": {
            "id": "test",
            "name": f"Test notification for {channel_name}",
            "metric": "test",
            "metric_label": "test value",
            "unit": "",
            "comparison": ">",
            "threshold": 0,
            "window": "5m",
            "filter": {},
        },
        "value": 1.0,
        "request_count": None,
        "url": f"{base_url}/alerts",
    }


async def send_test(channel: dict[str, Any], base_url: str, timeout_s: float) -> str | None:
    """Send the test notification through ``channel`` now: None, or why it did not arrive
    (the API's and the dashboard's "send test notification")."""
    msg = test_message(channel["name"], base_url, int(time.time() * 1000))
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        try:
            await send(channel, msg, f"test-{uuid.uuid4()}", session, timeout_s)
        except SendError as exc:
            return str(exc)
    return None
