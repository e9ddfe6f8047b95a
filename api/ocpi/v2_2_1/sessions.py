"""Sessions receiver, and the charging_preferences extension on it."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ContextDep, RegisteredCaller
from api.ocpi.envelope import envelope
from ems.ocpi import sessions
from ems.ocpi.schemas import ChargingPreferences, Session, SessionPatch
from ems.ocpi.sessions import PushOutcome

router = APIRouter(
    prefix="/ocpi/2.2.1/sessions/{country_code}/{party_id}/{session_id}", tags=["ocpi: sessions"]
)


def acknowledge(outcome: PushOutcome) -> JSONResponse:
    if outcome.ignored:
        return envelope(status_message="older than the stored last_updated: ignored")
    return envelope(http_status=201 if outcome.created else 200)


@router.get("")
def get_session(
    ctx: ContextDep, caller: RegisteredCaller, country_code: str, party_id: str, session_id: str
) -> JSONResponse:
    return envelope(sessions.get_session(ctx, caller, country_code, party_id, session_id))


@router.put("")
def put_session(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    session_id: str,
    body: Session,
) -> JSONResponse:
    return acknowledge(sessions.put_session(ctx, caller, country_code, party_id, session_id, body))


@router.patch("")
def patch_session(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    session_id: str,
    body: SessionPatch,
) -> JSONResponse:
    return acknowledge(sessions.patch_session(ctx, caller, country_code, party_id, session_id, body))


@router.put("/charging_preferences")
def put_charging_preferences(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    session_id: str,
    body: ChargingPreferences,
) -> JSONResponse:
    result = sessions.put_charging_preferences(ctx, caller, country_code, party_id, session_id, body)
    return envelope(result)
