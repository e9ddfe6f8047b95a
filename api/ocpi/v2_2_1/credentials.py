"""Credentials: registration, token rotation and unregistration, as the Receiver of the handshake."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import AnyCaller, ContextDep
from api.ocpi.envelope import envelope
from ems.ocpi import partners
from ems.ocpi.schemas import Credentials

router = APIRouter(prefix="/ocpi/2.2.1/credentials", tags=["ocpi: credentials"])


def _plain(credentials: Credentials) -> dict[str, object]:
    return credentials.model_dump(mode="json", exclude_none=True)


@router.get("")
def get_credentials(ctx: ContextDep, caller: AnyCaller) -> JSONResponse:
    return envelope(partners.current_credentials(ctx, caller))


@router.post("")
def post_credentials(ctx: ContextDep, caller: AnyCaller, body: Credentials) -> JSONResponse:
    return envelope(partners.accept_registration(ctx, caller, _plain(body)))


@router.put("")
def put_credentials(ctx: ContextDep, caller: AnyCaller, body: Credentials) -> JSONResponse:
    return envelope(partners.update_registration(ctx, caller, _plain(body)))


@router.delete("")
def delete_credentials(ctx: ContextDep, caller: AnyCaller) -> JSONResponse:
    partners.unregister(ctx, caller)
    return envelope()
