"""Dependency aliases the routes share: the running EMS and who is calling."""

from __future__ import annotations

import hmac
from http import HTTPStatus
from typing import Annotated

from annotated_types import Interval
from fastapi import Depends, Header, HTTPException, Request

from ems.core.context import EmsContext
from ems.ocpi.errors import OcpiError
from ems.ocpi.partners import Caller, PartnerStatus, authenticate
from ems.ocpi.status import OcpiStatus


async def get_context(request: Request) -> EmsContext:
    context: EmsContext = request.app.state.ems
    return context


ContextDep = Annotated[EmsContext, Depends(get_context)]

SQL_INTEGER_MAX = 2**63 - 1
"""The largest integer a column holds (SQLite INTEGER, PostgreSQL BIGINT)."""

RowNumber = Annotated[int, Interval(ge=1, le=SQL_INTEGER_MAX)]
"""A row id or version number in a URL: a larger one is a 422 naming it, not a database overflow."""


async def any_caller(ctx: ContextDep, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """Versions, version details and credentials: token A, a registering or a registered token.

    Async on purpose: a thread hop per dependency cost more than the lookup (cached, or one
    indexed query) that runs here on the event loop.
    """
    caller = authenticate(ctx, authorization)
    if caller is None:
        raise OcpiError(OcpiStatus.CLIENT_ERROR, "missing or unknown token", HTTPStatus.UNAUTHORIZED)
    return caller


async def registered_caller(ctx: ContextDep, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """Functional modules: only a registered partner's token; token A is refused."""
    caller = await any_caller(ctx, authorization)
    if caller.with_token_a or caller.status != PartnerStatus.REGISTERED:
        raise OcpiError(
            OcpiStatus.CLIENT_ERROR,
            "this token may only reach versions and credentials",
            HTTPStatus.UNAUTHORIZED,
        )
    return caller


AnyCaller = Annotated[Caller, Depends(any_caller)]
RegisteredCaller = Annotated[Caller, Depends(registered_caller)]


def admin_user(ctx: ContextDep, authorization: Annotated[str | None, Header()] = None) -> str:
    """The admin API: `Authorization: Bearer <EMS_ADMIN_TOKEN>` (login sessions for the UI come
    later); without a configured token the admin API is off rather than open. Returns who acts."""
    expected = ctx.settings.admin_token
    if expected is None:
        raise HTTPException(HTTPStatus.SERVICE_UNAVAILABLE, "admin API disabled: set EMS_ADMIN_TOKEN")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise HTTPException(
            HTTPStatus.UNAUTHORIZED, "missing or wrong admin token", headers={"WWW-Authenticate": "Bearer"}
        )
    return "admin"


AdminDep = Annotated[str, Depends(admin_user)]
