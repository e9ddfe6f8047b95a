"""ChargingProfiles, SCSP side: result callbacks and the ActiveChargingProfile push.

Both answers omit `data`, as the spec wants.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from api.deps import ContextDep, RegisteredCaller
from api.ocpi.envelope import envelope
from ems.ocpi import profiles
from ems.ocpi.schemas import ActiveChargingProfile

router = APIRouter(prefix="/ocpi/2.2.1/chargingprofiles", tags=["ocpi: chargingprofiles"])


@router.post("/callback/{request_id}")
def post_result(
    ctx: ContextDep, caller: RegisteredCaller, request_id: str, body: dict[str, Any] = Body()
) -> JSONResponse:
    profiles.record_result(ctx, caller, request_id, body)
    return envelope()


@router.put("/{session_id}")
def put_active_profile(
    ctx: ContextDep, caller: RegisteredCaller, session_id: str, body: ActiveChargingProfile
) -> JSONResponse:
    profiles.record_active_profile(ctx, caller, session_id, body)
    return envelope()
