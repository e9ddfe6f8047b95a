"""What every page shares: templates, the admin session cookie, CSRF checks and security headers.

- The admin session is Starlette's signed cookie (itsdangerous), keyed by a key derived from
  the server secret; it is built on the first request because the secret may live in the
  database, which the app only opens in its lifespan.
- Every POST of a logged-in page carries the session's CSRF token, as a form field
  `csrf_token` or (htmx) the `X-CSRF-Token` header, compared in constant time.
- Driver pages may be framed by any eMSP app (`frame-ancestors *`); admin pages by nobody.
  No page sends a Referer, so a driver link never leaks to another site.
"""

from __future__ import annotations

import hmac
import math
import secrets
from datetime import datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import ui
from api.deps import ContextDep
from ems.core.context import EmsContext
from ems.drivers.links import derived_key, server_secret
from ems.ocpi.datetimes import format_in_zone

UI_DIR = Path(ui.__file__).resolve().parent
templates = Jinja2Templates(directory=str(UI_DIR / "templates"))
SESSION_COOKIE = "ems_admin"
CSRF_KEY = "csrf"
CSRF_HEADER = "x-csrf-token"
SKIPPED_PREFIXES = ("/ocpi/", "/static/", "/api/", "/healthz", "/driver/")
"""Paths that never use the admin session: OCPI traffic stays as cheap as before, and driver
pages set no cookie (they live in third-party iframes; their link is their credential)."""


def _local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A date-time as given (callers convert to the zone they show first)."""
    if value is None:
        return "–"
    return value.strftime(fmt)


def _in_zone(value: datetime | None, zone: str, fmt: str = "%Y-%m-%d %H:%M", *, named: bool = False) -> str:
    """A date-time in the site's zone, labelled with it (`CEST`), so no page mixes zones;
    `named` spells the zone out too (`Europe/Paris (CEST)`) where a reader may not know it."""
    if value is None:
        return "–"
    return format_in_zone(value, zone, fmt, named=named)


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    number = float(value)
    if abs(number) < 0.5 * 10**-digits:
        number = 0.0  # no "-0.0"
    return f"{number:.{digits}f}"


def form_number(raw: str | None) -> Any:
    """A number from a form field; text that is no number is passed on for validation to name."""
    if raw is None or raw.strip() == "":
        return None
    try:
        value = float(raw.replace(",", "."))
    except ValueError:
        return raw
    if not math.isfinite(value):
        return raw
    return int(value) if value.is_integer() else value


templates.env.filters["local"] = _local
templates.env.filters["in_zone"] = _in_zone
templates.env.filters["num"] = _num


class LazySessionMiddleware:
    """Starlette's `SessionMiddleware`, made on the first request once the secret is known."""

    def __init__(self, app: ASGIApp, *, max_age_s: int, https_only: bool) -> None:
        self.app = app
        self.max_age_s = max_age_s
        self.https_only = https_only
        self._inner: SessionMiddleware | None = None

    def _middleware(self, ctx: EmsContext) -> SessionMiddleware:
        if self._inner is None:
            key = derived_key(server_secret(ctx), "admin-session").hex()
            self._inner = SessionMiddleware(
                self.app,
                secret_key=key,
                session_cookie=SESSION_COOKIE,
                max_age=self.max_age_s,
                same_site="lax",
                https_only=self.https_only,
            )
        return self._inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(SKIPPED_PREFIXES):
            await self.app(scope, receive, send)
            return
        ctx: EmsContext = scope["app"].state.ems
        await self._middleware(ctx)(scope, receive, send)


class SecurityHeadersMiddleware:
    """Framing, content-type and referrer rules on every page (not on OCPI or the JSON API)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or path.startswith(("/ocpi/", "/api/", "/healthz")):
            await self.app(scope, receive, send)
            return
        driver = path.startswith("/driver/") or path.startswith("/static/")
        frame = "frame-ancestors *" if driver else "frame-ancestors 'none'"
        csp = (
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            f"img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; {frame}"
        )
        extra = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
        ]
        if not driver:
            extra.append((b"x-frame-options", b"DENY"))
        if not path.startswith("/static/"):
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in extra if name not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# ---- CSRF and the logged-in admin -----------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use."""
    token = request.session.get(CSRF_KEY)
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_KEY] = token
    return token


class CsrfError(Exception):
    """A POST without the session's CSRF token."""


class LoginRequired(Exception):
    """An admin page asked for without a logged-in session."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


async def check_csrf(request: Request) -> None:
    """Every state-changing request of the pages: the form field or the htmx header must match."""
    expected = request.session.get(CSRF_KEY)
    given = request.headers.get(CSRF_HEADER)
    if not given:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get("csrf_token")
            given = value if isinstance(value, str) else None
    if (
        not isinstance(expected, str)
        or not given
        or not hmac.compare_digest(given.encode(), expected.encode())
    ):
        raise CsrfError()


def logged_in_admin(request: Request) -> str:
    user = request.session.get("user")
    if not isinstance(user, str):
        raise LoginRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return user


AdminSession = Annotated[str, Depends(logged_in_admin)]
CsrfChecked = Depends(check_csrf)


def render(request: Request, name: str, status_code: int = HTTPStatus.OK, **context: Any) -> HTMLResponse:
    context.setdefault("user", request.session.get("user") if "session" in request.scope else None)
    if "session" in request.scope:
        context.setdefault("csrf", csrf_token(request))
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def login_redirect(request: Request, next_path: str) -> Response:
    target = "/login?next=" + quote(next_path, safe="/")
    if is_htmx(request):
        return Response(status_code=HTTPStatus.OK, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=HTTPStatus.SEE_OTHER)


def csrf_refused(request: Request) -> Response:
    return render(
        request,
        "error.html",
        status_code=HTTPStatus.FORBIDDEN,
        title="Form expired",
        message="This form is no longer valid (missing or wrong CSRF token). Reload the page and try again.",
    )


__all__ = ["AdminSession", "ContextDep", "CsrfChecked", "render"]
