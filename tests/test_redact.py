"""Redaction by pattern: credential-named headers and parameters, credential-shaped values."""

from __future__ import annotations

import pytest

from heliograph.gateway.redact import (
    REDACTED,
    HeaderRedactor,
    redact_header,
    redact_path,
    redact_query,
    scrub,
)


@pytest.mark.parametrize(
    "name",
    [
        "authorization",
        "authentication",
        "x-auth",
        "x-custom-auth",
        "cf-aig-authorization",
        "x-ms-authorization-auxiliary",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "helicone-auth",
        "cookie",
        "x-session-token",
        "x-client-secret",
        "x-db-password",
        "x-amz-signature",
        "helicone-property-apikey",
    ],
)
def test_credential_names_are_hidden_whole(name: str) -> None:
    assert redact_header(name, "anything at all") == REDACTED
    assert HeaderRedactor().value(name, "anything at all") == REDACTED


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("user-agent", "OpenAI/Python 1.57.0"),
        ("content-type", "application/json"),
        ("helicone-user-id", "alice@example.com"),
        ("helicone-session-id", "7b0b8f8e-1a2b-4c3d-9e8f-0123456789ab"),
        ("cache-control", "max-age=3600"),
        ("x-openwebui-chat-id", "temporary:abc"),
        ("x-openwebui-auth-type", "jwt"),
        ("x-stainless-retry-count", "0"),
        ("helicone-property-env", "production"),
    ],
)
def test_ordinary_headers_are_kept(name: str, value: str) -> None:
    assert redact_header(name, value) == value


@pytest.mark.parametrize(
    "secret",
    [
        "sk-proj-abcdefghijklmnop0123456789",
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "gsk_abcdefghijklmnopqrstuv0123",
        "xai-abcdefghijklmnopqrstuv0123",
        "hg_0s7fB4F1V7RY9A99F_Lp9GJ30yPPBZU4",
        "AIzaSyD0123456789abcdefghijklmnopqrstu",
        "AKIAIOSFODNN7EXAMPLE",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
        "Bearer abcdefgh12",
    ],
)
def test_credential_shaped_values_are_hidden_under_any_name(secret: str) -> None:
    shown = redact_header("x-anything", f"note {secret} end")
    assert secret not in shown and REDACTED in shown
    assert secret not in scrub(f'{{"x": "{secret}"}}')


def test_queries_are_split_on_both_separators_and_decoded_before_matching() -> None:
    out = redact_query("a=1&%6Bey=s1;api_key=s2&Token=s3&b=2&x=sk-abcdefghijklmnopqrstu")
    for secret in ("s1", "s2", "s3", "sk-abcdefghijklmnopqrstu"):
        assert secret not in out
    assert "a=1" in out and "b=2" in out


def test_paths_and_urls_hide_key_parameters_even_when_encoded() -> None:
    assert "s3cr3t" not in redact_path("/models/x?key=s3cr3t")
    assert "s3cr3t" not in redact_path("/models/x%253Fkey%253Ds3cr3t")  # double encoding
    assert "s3cr3t" not in scrub("https://api.example/v1?api_key=s3cr3t&x=1")
    assert redact_path("/v1/chat/completions") == "/v1/chat/completions"


def test_malformed_json_with_an_authorization_member_is_scrubbed() -> None:
    text = '[{"upstream": "groq", "headers": {"authorization": "Bearer gsk_x"}'
    assert "gsk_x" not in scrub(text)


def test_the_name_cache_is_bounded() -> None:
    redactor = HeaderRedactor()
    for i in range(10_000):
        redactor.value(f"x-h{i}", "v")
    assert len(redactor._secret) <= 4096
