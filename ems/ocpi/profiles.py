"""ChargingProfiles, the SCSP side: calls to the CPO's receiver and the answers that come back.

Every call gets its own request id inside the `response_url`, and its row is committed *before*
the call goes out, so an asynchronous result that races the synchronous answer still finds it.
Every outcome — transport error, synchronous answer, asynchronous result — is stored.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from ems.core.context import EmsContext
from ems.core.events import ChargingProfileOutcome
from ems.ocpi.errors import OcpiClientError, OcpiError
from ems.ocpi.partners import OCPI_VERSION, Caller, partner_client
from ems.ocpi.schemas import (
    ActiveChargingProfile,
    ActiveChargingProfileResult,
    ChargingProfileResponse,
    ChargingProfileResult,
    ClearProfileResult,
)
from ems.ocpi.status import OcpiStatus
from ems.ocpi.urls import join_url
from ems.store.db import transaction
from ems.store.models import ActiveProfileReport, ChargingSession, Partner, ProfileRequest

ResultModel = ChargingProfileResult | ActiveChargingProfileResult | ClearProfileResult
_RESULT_MODELS: dict[str, type[ResultModel]] = {
    "set": ChargingProfileResult,
    "get": ActiveChargingProfileResult,
    "clear": ClearProfileResult,
}


@dataclass(frozen=True)
class ProfileCallOutcome:
    request_id: str
    response_result: str | None
    """ACCEPTED, NOT_SUPPORTED, REJECTED, TOO_OFTEN, UNKNOWN_SESSION; None when the call failed."""
    timeout_s: int | None
    error: str | None


def response_url(ctx: EmsContext, request_id: str) -> str:
    return join_url(ctx.settings.ocpi_base_url, OCPI_VERSION, "chargingprofiles", "callback", request_id)


def _call(
    ctx: EmsContext,
    session_pk: int,
    kind: str,
    charging_profile: dict[str, Any] | None = None,
    duration_s: int | None = None,
) -> ProfileCallOutcome:
    request_id = str(uuid.uuid4())
    with transaction(ctx.db) as db:
        session = db.get(ChargingSession, session_pk)
        if session is None:
            raise ValueError(f"no session with key {session_pk}")
        partner = db.get(Partner, session.partner_id)
        assert partner is not None
        db.add(
            ProfileRequest(
                request_id=request_id,
                partner_id=partner.id,
                session_pk=session.id,
                session_id=session.session_id,
                kind=kind,
                charging_profile=charging_profile,
                duration_s=duration_s,
                sent_at=ctx.clock.now(),
            )
        )
        base = partner.endpoint_url("chargingprofiles", "RECEIVER")
        session_id = session.session_id
    callback = response_url(ctx, request_id)
    result: str | None = None
    timeout_s: int | None = None
    error: str | None = None
    http_status: int | None = None
    status_code: int | None = None
    try:
        if base is None:
            raise OcpiClientError("the partner offers no chargingprofiles RECEIVER endpoint")
        url = join_url(base, session_id)
        client = partner_client(ctx, ctx.http, partner)
        if kind == "set":
            reply = client.request(
                "PUT", url, body={"charging_profile": charging_profile, "response_url": callback}
            )
        elif kind == "get":
            reply = client.request("GET", url, params={"duration": duration_s, "response_url": callback})
        else:
            reply = client.request("DELETE", url, params={"response_url": callback})
        http_status, status_code = reply.http_status, reply.status_code
        answer = ChargingProfileResponse.model_validate(reply.data)
        result, timeout_s = str(answer.result), answer.timeout
    except OcpiClientError as exc:
        error, http_status, status_code = str(exc), exc.http_status, exc.status_code
    except ValidationError as exc:
        error = f"the answer is not a ChargingProfileResponse: {exc.errors()[0]['msg']}"
    with transaction(ctx.db) as db:
        row = db.scalars(select(ProfileRequest).where(ProfileRequest.request_id == request_id)).one()
        row.http_status = http_status
        row.ocpi_status_code = status_code
        row.response_result = result
        row.response_timeout_s = timeout_s
        row.error = error
        partner_id = row.partner_id
    ctx.bus.publish(
        ChargingProfileOutcome(request_id, partner_id, session_id, kind, result or "ERROR", ctx.clock.now())
    )
    return ProfileCallOutcome(request_id, result, timeout_s, error)


def send_charging_profile(
    ctx: EmsContext, session_pk: int, charging_profile: dict[str, Any]
) -> ProfileCallOutcome:
    """PUT SetChargingProfile for one session."""
    return _call(ctx, session_pk, "set", charging_profile=charging_profile)


def request_active_profile(ctx: EmsContext, session_pk: int, duration_s: int) -> ProfileCallOutcome:
    """GET the ActiveChargingProfile for the next `duration_s` seconds."""
    return _call(ctx, session_pk, "get", duration_s=duration_s)


def clear_profile(ctx: EmsContext, session_pk: int) -> ProfileCallOutcome:
    """DELETE the profile we set on a session."""
    return _call(ctx, session_pk, "clear")


def record_result(ctx: EmsContext, caller: Caller, request_id: str, body: Any) -> None:
    """The asynchronous result POSTed to a `response_url` we handed out."""
    with transaction(ctx.db) as db:
        row = db.scalars(select(ProfileRequest).where(ProfileRequest.request_id == request_id)).one_or_none()
        if row is None or row.partner_id != caller.partner_id:
            raise OcpiError(
                OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                f"unknown response_url request id {request_id}",
                HTTPStatus.NOT_FOUND,
            )
        try:
            result = _RESULT_MODELS[row.kind].model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise OcpiError(
                OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                f"{where}: {first['msg']} (expected a {_RESULT_MODELS[row.kind].__name__})",
            ) from exc
        row.result = str(result.result)
        row.result_body = result.model_dump(mode="json", exclude_none=True)
        row.result_at = ctx.clock.now()
        profile = getattr(result, "profile", None)
        if isinstance(profile, ActiveChargingProfile):
            db.add(
                ActiveProfileReport(
                    partner_id=row.partner_id,
                    session_pk=row.session_pk,
                    session_id=row.session_id,
                    source="get",
                    start_date_time=profile.start_date_time,
                    charging_profile=profile.charging_profile.model_dump(mode="json", exclude_none=True),
                )
            )
        event = ChargingProfileOutcome(
            request_id,
            row.partner_id,
            row.session_id,
            row.kind,
            row.result,
            ctx.clock.now(),
            asynchronous=True,
        )
    ctx.bus.publish(event)


def record_active_profile(
    ctx: EmsContext, caller: Caller, session_id: str, body: ActiveChargingProfile
) -> None:
    """The CPO pushes the profile a station really applies (other inputs, local limits)."""
    with transaction(ctx.db) as db:
        session = db.scalars(
            select(ChargingSession)
            .where(ChargingSession.partner_id == caller.partner_id, ChargingSession.session_id == session_id)
            .order_by(ChargingSession.id.desc())
        ).first()
        if session is None:
            raise OcpiError(
                OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                f"unknown session {session_id}",
                HTTPStatus.NOT_FOUND,
            )
        db.add(
            ActiveProfileReport(
                partner_id=caller.partner_id,
                session_pk=session.id,
                session_id=session_id,
                source="push",
                start_date_time=body.start_date_time,
                charging_profile=body.charging_profile.model_dump(mode="json", exclude_none=True),
            )
        )
