"""Admin log-in and log-out: a password checked by `ems.admin.users`, a throttle, a fresh session."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from api.ui.common import AdminSession, ContextDep, CsrfChecked, csrf_token, render
from ems.admin.users import LoginThrottle, authenticate

router = APIRouter(include_in_schema=False)
throttle = LoginThrottle()


def _safe_next(value: str | None) -> str:
    """Only a path of this site (no `//host`, no scheme): no open redirect through the log-in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/admin"
    return value


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    return render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login", dependencies=[CsrfChecked])
async def login(
    request: Request,
    ctx: ContextDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str | None, Form()] = None,
) -> Response:
    client = request.client.host if request.client else "?"
    keys = (f"user:{username.lower()}", f"ip:{client}")
    wait_s = await run_in_threadpool(throttle.retry_after_s, ctx, *keys)
    if wait_s > 0:
        return render(
            request,
            "login.html",
            status_code=HTTPStatus.TOO_MANY_REQUESTS,
            next=_safe_next(next),
            error=f"Too many failed attempts: try again in {int(wait_s) + 1} s.",
        )
    user = await run_in_threadpool(authenticate, ctx, username, password)
    if user is None:
        await run_in_threadpool(throttle.failed, ctx, *keys)
        return render(
            request,
            "login.html",
            status_code=HTTPStatus.UNAUTHORIZED,
            next=_safe_next(next),
            error="Wrong username or password.",
        )
    await run_in_threadpool(throttle.succeeded, ctx, *keys)
    request.session.clear()  # a new session on log-in: no fixation of a planted cookie
    request.session["user"] = user
    csrf_token(request)
    return RedirectResponse(_safe_next(next), status_code=HTTPStatus.SEE_OTHER)


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request, _user: AdminSession) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=HTTPStatus.SEE_OTHER)
