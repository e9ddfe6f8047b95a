"""Locations receiver at location, EVSE and connector depth."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ContextDep, RegisteredCaller
from api.ocpi.envelope import envelope
from api.ocpi.v2_2_1.sessions import acknowledge
from ems.ocpi import locations
from ems.ocpi.schemas import EVSE, Connector, ConnectorPatch, EvsePatch, Location, LocationPatch

router = APIRouter(
    prefix="/ocpi/2.2.1/locations/{country_code}/{party_id}/{location_id}", tags=["ocpi: locations"]
)
EVSE_PATH = "/{evse_uid}"
CONNECTOR_PATH = "/{evse_uid}/{connector_id}"


@router.get("")
def get_location(
    ctx: ContextDep, caller: RegisteredCaller, country_code: str, party_id: str, location_id: str
) -> JSONResponse:
    return envelope(locations.get_object(ctx, caller, country_code, party_id, location_id))


@router.put("")
def put_location(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    location_id: str,
    body: Location,
) -> JSONResponse:
    return acknowledge(locations.put_location(ctx, caller, country_code, party_id, location_id, body))


@router.patch("")
def patch_location(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    location_id: str,
    body: LocationPatch,
) -> JSONResponse:
    return acknowledge(locations.patch_location(ctx, caller, country_code, party_id, location_id, body))


@router.get(EVSE_PATH)
def get_evse(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    location_id: str,
    evse_uid: str,
) -> JSONResponse:
    return envelope(locations.get_object(ctx, caller, country_code, party_id, location_id, evse_uid))


@router.put(EVSE_PATH)
def put_evse(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    location_id: str,
    evse_uid: str,
    body: EVSE,
) -> JSONResponse:
    return acknowledge(locations.put_evse(ctx, caller, country_code, party_id, location_id, evse_uid, body))


@router.patch(EVSE_PATH)
def patch_evse(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    location_id: str,
    evse_uid: str,
    body: EvsePatch,
) -> JSONResponse:
    return acknowledge(locations.patch_evse(ctx, caller, country_code, party_id, location_id, evse_uid, body))


@router.get(CONNECTOR_PATH)
def get_connector(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    location_id: str,
    evse_uid: str,
    connector_id: str,
) -> JSONResponse:
    return envelope(
        locations.get_object(ctx, caller, country_code, party_id, location_id, evse_uid, connector_id)
    )


@router.put(CONNECTOR_PATH)
def put_connector(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    location_id: str,
    evse_uid: str,
    connector_id: str,
    body: Connector,
) -> JSONResponse:
    return acknowledge(
        locations.put_connector(
            ctx, caller, country_code, party_id, location_id, evse_uid, connector_id, body
        )
    )


@router.patch(CONNECTOR_PATH)
def patch_connector(
    ctx: ContextDep,
    caller: RegisteredCaller,
    country_code: str,
    party_id: str,
    location_id: str,
    evse_uid: str,
    connector_id: str,
    body: ConnectorPatch,
) -> JSONResponse:
    return acknowledge(
        locations.patch_connector(
            ctx, caller, country_code, party_id, location_id, evse_uid, connector_id, body
        )
    )
