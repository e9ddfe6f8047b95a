"""Dependency aliases the routes share: the running EMS and who is calling."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, Header, Request

from ems.context import EmsContext
from ems.ocpi.errors import OcpiError
from ems.ocpi.partners import Caller, PartnerStatus, authenticate
from ems.ocpi.status import OcpiStatus


def get_context(request: Request) -> EmsContext:
    context: EmsContext = request.app.state.ems
    return context


ContextDep = Annotated[EmsContext, Depends(get_context)]


def any_caller(ctx: ContextDep, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """Versions, version details and credentials: token A, a registering or a registered token."""
    caller = authenticate(ctx, authorization)
    if caller is None:
        raise OcpiError(OcpiStatus.CLIENT_ERROR, "missing or unknown token", HTTPStatus.UNAUTHORIZED)
    return caller


def registered_caller(ctx: ContextDep, authorization: Annotated[str | None, Header()] = None) -> Caller:
    """Functional modules: only a registered partner's token; token A is refused."""
    caller = any_caller(ctx, authorization)
    if caller.with_token_a or caller.status != PartnerStatus.REGISTERED:
        raise OcpiError(
            OcpiStatus.CLIENT_ERROR,
            "this token may only reach versions and credentials",
            HTTPStatus.UNAUTHORIZED,
        )
    return caller


AnyCaller = Annotated[Caller, Depends(any_caller)]
RegisteredCaller = Annotated[Caller, Depends(registered_caller)]
