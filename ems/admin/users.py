"""Admin users: scrypt password hashes, log-in checks and a throttle against password guessing.

Passwords are hashed with the standard library's scrypt (memory-hard, RFC 7914) and a random
salt per user; the parameters are stored with each hash so they can be raised later without
invalidating existing ones. A failed log-in costs the same time whether or not the user exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from ems.core.context import EmsContext
from ems.store.base import utcnow
from ems.store.db import transaction
from ems.store.models import AdminUser, LoginFailure

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SCRYPT_DKLEN = 32
MIN_PASSWORD_CHARS = 10
USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


class UserError(ValueError):
    """A username or password refused when creating a user."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """`scrypt$N$r$p$salt$hash`, base64 parts."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=SCRYPT_DKLEN
    )
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time comparison; a malformed hash never matches."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(hash_b64)
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=base64.b64decode(salt_b64),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=256 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


_DUMMY_HASH = hash_password("not-a-real-password", salt=b"\0" * 16)
"""Checked against when the user does not exist, so timing does not reveal usernames."""


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if password.strip() != password:
        raise UserError("the password must not start or end with spaces")


def create_user(ctx: EmsContext, username: str, password: str, *, replace: bool = False) -> AdminUser:
    """Store a new admin (or, with `replace`, set the password of an existing one)."""
    if not USERNAME_RE.match(username):
        raise UserError("the username must be 1 to 64 letters, digits or _ . @ -")
    check_new_password(password)
    encoded = hash_password(password)
    try:
        with transaction(ctx.db) as db:
            user = db.scalars(select(AdminUser).where(AdminUser.username == username)).one_or_none()
            if user is not None and not replace:
                raise UserError(f"user {username!r} already exists (use --replace to set a new password)")
            if user is None:
                user = AdminUser(username=username, password_hash=encoded, created_at=utcnow())
                db.add(user)
            else:
                user.password_hash = encoded
            db.flush()
    except IntegrityError as exc:
        raise UserError(f"user {username!r} already exists") from exc
    return user


def authenticate(ctx: EmsContext, username: str, password: str) -> str | None:
    """The username when the password is right, else None (same cost either way)."""
    with ctx.db() as db:
        user = db.scalars(select(AdminUser).where(AdminUser.username == username)).one_or_none()
        encoded = user.password_hash if user is not None else _DUMMY_HASH
    ok = verify_password(password, encoded) and user is not None
    if not ok:
        return None
    with transaction(ctx.db) as db:
        row = db.scalars(select(AdminUser).where(AdminUser.username == username)).one()
        row.last_login_at = utcnow()
    return username


def user_exists(ctx: EmsContext, username: str) -> bool:
    with ctx.db() as db:
        return db.scalar(select(AdminUser.id).where(AdminUser.username == username)) is not None


@dataclass
class LoginThrottle:
    """At most `max_failures` failed log-ins per username and per client address in `window_s`;
    past that, log-ins from there are refused until the oldest failure leaves the window.

    The failures are kept in the database: behind a load balancer every replica counts them
    all, so more replicas give an attacker no more tries."""

    max_failures: int = 5
    window_s: float = 300.0

    def retry_after_s(self, ctx: EmsContext, *keys: str) -> float:
        """0 when a log-in may be tried now, else seconds to wait."""
        now = utcnow()
        since = now - timedelta(seconds=self.window_s)
        wait = 0.0
        with ctx.db() as db:
            for key in keys:
                recent = list(
                    db.scalars(
                        select(LoginFailure.at)
                        .where(LoginFailure.key == key[:200], LoginFailure.at > since)
                        .order_by(LoginFailure.at)
                    )
                )
                if len(recent) >= self.max_failures:
                    oldest = recent[-self.max_failures]
                    wait = max(wait, self.window_s - (now - oldest).total_seconds())
        return wait

    def failed(self, ctx: EmsContext, *keys: str) -> None:
        now = utcnow()
        with transaction(ctx.db) as db:
            db.add_all(LoginFailure(key=key[:200], at=now) for key in keys)
            db.execute(delete(LoginFailure).where(LoginFailure.at < now - timedelta(seconds=self.window_s)))

    def succeeded(self, ctx: EmsContext, *keys: str) -> None:
        with transaction(ctx.db) as db:
            db.execute(delete(LoginFailure).where(LoginFailure.key.in_([key[:200] for key in keys])))
