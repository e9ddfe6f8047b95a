"""Signed per-session links for the driver widget, and the server secret that signs them.

A link is `/driver/{token}` with `token = {session_pk}.{expires_unix}.{signature}`, the
signature being HMAC-SHA256 over `driver-link:{session_pk}:{expires_unix}` with a key derived
from the server secret (base64url, 43 characters). Without the secret nobody can make a valid
token for another session or extend an expiry; the session's primary key alone opens nothing.

The secret is `EMS_SECRET_KEY`, or one generated at first use and kept in the database so
links (and admin cookies, which use another key derived from it) survive a restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from ems.core.context import EmsContext
from ems.store.base import utcnow
from ems.store.db import transaction
from ems.store.models import AppSecret, ChargingSession

SECRET_NAME = "secret_key"
TOKEN_RE = re.compile(r"^([1-9][0-9]{0,17})\.([1-9][0-9]{0,11})\.([A-Za-z0-9_-]{43})$")


class InvalidLinkError(ValueError):
    """A driver link that is malformed, forged, expired, or names an unknown session."""


def server_secret(ctx: EmsContext) -> str:
    """`EMS_SECRET_KEY`, else the generated secret kept in the database (made on first use)."""
    if ctx.settings.secret_key is not None:
        return ctx.settings.secret_key
    with ctx.db() as db:
        row = db.get(AppSecret, SECRET_NAME)
        if row is not None:
            return row.value
    try:
        with transaction(ctx.db) as db:
            if db.get(AppSecret, SECRET_NAME) is None:
                db.add(AppSecret(name=SECRET_NAME, value=secrets.token_urlsafe(48), created_at=utcnow()))
    except IntegrityError:
        pass  # another process made it first: use theirs
    with ctx.db() as db:
        row = db.get(AppSecret, SECRET_NAME)
        assert row is not None
        return row.value


def derived_key(secret: str, purpose: str) -> bytes:
    """One key per use of the secret, so a driver-link signature is never a valid cookie."""
    return hmac.new(secret.encode(), f"ems:{purpose}".encode(), hashlib.sha256).digest()


def _signature(key: bytes, session_pk: int, expires_unix: int) -> str:
    mac = hmac.new(key, f"driver-link:{session_pk}:{expires_unix}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign(secret: str, session_pk: int, expires_at: datetime) -> str:
    expires_unix = int(expires_at.timestamp())
    signature = _signature(derived_key(secret, "driver-link"), session_pk, expires_unix)
    return f"{session_pk}.{expires_unix}.{signature}"


def verify(secret: str, token: str, now: datetime) -> int:
    """The session primary key of a genuine, unexpired token; `InvalidLinkError` otherwise."""
    match = TOKEN_RE.match(token)
    if match is None:
        raise InvalidLinkError("this link is not a valid driver link")
    session_pk, expires_unix = int(match.group(1)), int(match.group(2))
    expected = _signature(derived_key(secret, "driver-link"), session_pk, expires_unix)
    if not hmac.compare_digest(expected, match.group(3)):
        raise InvalidLinkError("this link is not a valid driver link")
    if now.timestamp() >= expires_unix:
        raise InvalidLinkError("this link has expired: ask for a new one in your app")
    return session_pk


@dataclass(frozen=True)
class DriverLink:
    session_pk: int
    token: str
    expires_at: datetime

    def path(self) -> str:
        return f"/driver/{self.token}"


def mint(ctx: EmsContext, session_pk: int, ttl: timedelta | None = None) -> DriverLink:
    """A link for an existing session, valid `ttl` (default `EMS_DRIVER_LINK_TTL_S`) from now.

    Expiry is wall-clock time, never the (possibly simulated, sped-up) EMS clock: it guards access.
    """
    with ctx.db() as db:
        if db.get(ChargingSession, session_pk) is None:
            raise LookupError(f"unknown session {session_pk}")
    ttl = ttl or timedelta(seconds=ctx.settings.driver_link_ttl_s)
    expires_at = (utcnow() + ttl).replace(microsecond=0)
    return DriverLink(session_pk, sign(server_secret(ctx), session_pk, expires_at), expires_at)


def session_of(ctx: EmsContext, token: str) -> int:
    """The session a link opens, checked against the secret, the clock and the database."""
    session_pk = verify(server_secret(ctx), token, utcnow())
    with ctx.db() as db:
        if db.get(ChargingSession, session_pk) is None:
            raise InvalidLinkError("this link names no known charging session")
    return session_pk
