"""Open WebUI-like chat traffic for the writer benchmark (issue 19, "realistic traffic").

Each record is one streamed chat as Open WebUI sends it through the gateway: a ~2,000-token
prompt (a system prompt and a multi-turn history, about 8 KB of text that differs from record
to record), Open WebUI's user and chat headers (``ENABLE_FORWARD_USER_INFO_HEADERS``) read by
the gateway's own header scan into the start frame's ``md``, and a 300-event answer in
OpenAI's exact chunk format (role chunk, content chunks, finish chunk, the usage chunk that
``stream_options.include_usage`` asks for, ``[DONE]``), with one chunk-arrival mark per event
as the gateway's response tap records them.
"""

from __future__ import annotations

import random
import uuid
from typing import Any
from urllib.parse import quote

import orjson

from heliograph.capture.frames import EndFrame, StartFrame
from heliograph.gateway.redact import HeaderRedactor
from heliograph.gateway.scan import scan_headers

EVENTS = 300  # data events of one answer: role, 297 content deltas, finish, usage
PROMPT_BYTES = 8_000  # about 2,000 tokens of English text
MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
_VOCABULARY = (
    "the of and to in is you that it he was for on are as with his they at be this have from "
    "or one had by word but not what all were we when your can said there use an each which "
    "she do how their if will up other about out many then them these so some her would make "
    "like him into time has look two more write go see number no way could people my than "
    "first water been call who oil its now find long down day did get come made may part "
    "database query index latency throughput gateway stream token prompt model answer user "
    "python function variable memory server request response cache budget schedule meeting "
    "report customer invoice contract garden recipe travel hotel flight museum history river "
    "mountain weather forecast analysis summary chapter paragraph translation grammar verb"
)
_WORDS = _VOCABULARY.split()
_NAMES = ("Ana García", "Bob Smith", "Chloé Martin", "Dmitri Ivanov", "Eve O'Neil", "Fatima Zahra")
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SYSTEM = (
    "You are a helpful assistant for the staff of a mid-sized company. Answer concisely, cite "
    "the documents you were given when you use them, and say so when you do not know. "
)


def _text(rng: random.Random, size: int) -> str:
    """About ``size`` characters of varied words, in sentences."""
    words: list[str] = []
    length = 0
    while length < size:
        sentence = rng.choices(_WORDS, k=rng.randint(6, 18))
        sentence[0] = sentence[0].capitalize()
        text = " ".join(sentence) + rng.choice((". ", "? ", ", and ", "! "))
        words.append(text)
        length += len(text)
    return "".join(words)[:size]


def _messages(rng: random.Random, i: int) -> list[dict[str, str]]:
    """A system prompt and a history of user/assistant turns, ~PROMPT_BYTES in all."""
    messages = [{"role": "system", "content": _SYSTEM + _text(rng, 600)}]
    turns = rng.randint(3, 6)
    budget = PROMPT_BYTES - len(messages[0]["content"])
    for _ in range(turns):
        share = budget // (2 * turns)
        messages.append({"role": "user", "content": f"({i}) " + _text(rng, share // 3)})
        messages.append({"role": "assistant", "content": _text(rng, share * 5 // 3)})
    messages.append({"role": "user", "content": f"Request {i}: " + _text(rng, 300)})
    return messages


def request_body(rng: random.Random, i: int) -> bytes:
    """The chat Open WebUI sends (its body as spooled: before any include_usage injection)."""
    return orjson.dumps(
        {
            "stream": True,
            "model": MODEL,
            "messages": _messages(rng, i),
            "stream_options": {"include_usage": True},
        }
    )


def _user(rng: random.Random) -> tuple[str, str, str]:
    n = rng.randrange(200)
    name = f"{_NAMES[n % len(_NAMES)]} {n}"
    return str(uuid.UUID(int=n + 1)), name, f"user{n}@example.com"


def raw_headers(rng: random.Random, body_len: int) -> list[tuple[bytes, bytes]]:
    """The ASGI headers of Open WebUI's chat request (aiohttp client, user info forwarded)."""
    uid, name, email = _user(rng)
    chat = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return [
        (b"host", b"heliograph.internal:8787"),
        (b"user-agent", b"Python/3.11 aiohttp/3.11.18"),
        (b"authorization", b"Bearer sk-proj-" + b"x" * 40),
        (b"content-type", b"application/json"),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"content-length", str(body_len).encode()),
        (b"x-openwebui-user-name", quote(name).encode()),
        (b"x-openwebui-user-id", uid.encode()),
        (b"x-openwebui-user-email", quote(email).encode()),
        (b"x-openwebui-user-role", b"user"),
        (b"x-openwebui-chat-id", chat.encode()),
    ]


class Chats:
    """Makes the frames of Open WebUI chats; one instance per spool fill."""

    def __init__(self, seed: int = 19) -> None:
        self.rng = random.Random(seed)
        self.redactor = HeaderRedactor()  # the gateway's, with its caches

    def start(self, rid: str, ts: float, body: bytes) -> StartFrame:
        """The start frame the gateway writes (its header scan builds ``h`` and ``md``)."""
        scan = scan_headers(raw_headers(self.rng, len(body)), "bench-key", self.redactor, None)
        return {
            "id": rid,
            "ts": ts,
            "org": "bench-org",
            "key": "bench-key",
            "up": "openai",
            "pr": "openai",
            "pv": "openai",
            "m": "POST",
            "p": "/chat/completions",
            "q": "",
            "h": scan.saved,
            "md": scan.md,
        }

    def answer(self, rid: str, prompt_tokens: int) -> tuple[bytes, EndFrame]:
        """A 300-event SSE answer in OpenAI's chunk format and the end frame for it."""
        rng = self.rng
        chat_id = "chatcmpl-" + uuid.UUID(int=rng.getrandbits(128)).hex[:29]
        head = (
            b'{"id":"' + chat_id.encode() + b'","object":"chat.completion.chunk","created":'
            b'1764921600,"model":"' + RESPONSE_MODEL.encode() + b'","service_tier":"default",'
            b'"system_fingerprint":"fp_560af6e559","choices":'
        )
        content = EVENTS - 3
        pieces = [" " + w for w in rng.choices(_WORDS, k=content)]
        parts = [
            _event(head, {"role": "assistant", "content": "", "refusal": None}, None, rng),
            *(_event(head, {"content": p}, None, rng) for p in pieces),
            _event(head, {}, "stop", rng),
            _usage_event(head, prompt_tokens, content, rng),
            b"data: [DONE]\n\n",
        ]
        body = bytearray()
        marks: list[tuple[int, float]] = []
        t = 310.0 + rng.random() * 200  # time to first byte, then ~15 ms per token
        for n, part in enumerate(parts):
            body += part
            if n < len(parts) - 1:  # [DONE] arrives in the same read as the usage chunk
                marks.append((len(body), round(t, 3)))
                t += 10.0 + rng.random() * 10
        marks[-1] = (len(body), marks[-1][1])
        headers = [  # as sent on to the client: hop-by-hop and date dropped, our ids added
            ("content-type", "text/event-stream; charset=utf-8"),
            ("access-control-expose-headers", "X-Request-ID"),
            ("openai-organization", "user-abc123"),
            ("openai-processing-ms", str(int(marks[0][1]) - 10)),
            ("openai-version", "2020-10-01"),
            ("x-ratelimit-limit-requests", "10000"),
            ("x-ratelimit-limit-tokens", "10000000"),
            ("x-ratelimit-remaining-requests", "9999"),
            ("x-ratelimit-remaining-tokens", str(10_000_000 - prompt_tokens)),
            ("x-ratelimit-reset-requests", "6ms"),
            ("x-ratelimit-reset-tokens", "0s"),
            ("x-request-id", "req_" + uuid.UUID(int=rng.getrandbits(128)).hex),
            ("cf-cache-status", "DYNAMIC"),
            ("heliograph-id", rid),
            ("helicone-id", rid),
        ]
        end: EndFrame = {
            "id": rid,
            "st": 200,
            "state": "ok",
            "err": None,
            "lat": marks[-1][1] + 1.0,
            "ttfb": round(marks[0][1] - 5.0, 3),
            "ct": "text/event-stream; charset=utf-8",
            "rh": headers,
            "ch": marks,
        }
        return bytes(body), end


def _obfuscation(rng: random.Random) -> str:
    """OpenAI pads each chunk with a random ``obfuscation`` string (length varies)."""
    return "".join(rng.choices(_LETTERS, k=rng.randint(2, 12)))


def _event(head: bytes, delta: dict[str, Any], finish: str | None, rng: random.Random) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    tail = orjson.dumps([choice]) + b',"usage":null,"obfuscation":"'
    return b"data: " + head + tail + _obfuscation(rng).encode() + b'"}\n\n'


def _usage_event(head: bytes, prompt: int, completion: int, rng: random.Random) -> bytes:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    tail = b'[],"usage":' + orjson.dumps(usage) + b',"obfuscation":"'
    return b"data: " + head + tail + _obfuscation(rng).encode() + b'"}\n\n'
