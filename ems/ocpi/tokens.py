"""Credentials tokens: making them, sending them, and recognising them in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets


def new_token() -> str:
    """A fresh token: 43 URL-safe characters, printable ASCII as OCPI requires, well under 64.

    Never starting with `-`: people paste tokens into command lines (`--token-a TOKEN`), where a
    leading dash reads as an option.
    """
    while True:
        token = secrets.token_urlsafe(32)
        if not token.startswith("-"):
            return token


def token_digest(token: str) -> str:
    """What we index tokens by, so a lookup never compares the secret itself byte by byte."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def tokens_equal(presented: str, stored: str | None) -> bool:
    return stored is not None and hmac.compare_digest(presented.encode("utf-8"), stored.encode("utf-8"))


def authorization_header(token: str, encoding: str) -> str:
    """`Token <base64 of the token>` for OCPI 2.2.1 peers, `Token <token>` for older ones."""
    if encoding == "raw":
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def presented_tokens(header: str | None) -> list[str]:
    """The tokens an Authorization header may carry: Base64-decoded (2.2.1) first, then raw.

    A raw token can also happen to be valid Base64, so both readings are tried.
    """
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    candidates: list[str] = []
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = ""
    if decoded and decoded.isprintable() and decoded == decoded.strip():
        candidates.append(decoded)
    candidates.append(value)
    return candidates
