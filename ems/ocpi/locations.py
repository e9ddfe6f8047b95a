"""The Locations receiver at location, EVSE and connector depth.

A PUT or PATCH of a connector copies its `last_updated` up to its EVSE and Location, and an EVSE
to its Location (the spec's rule). OCPI leaves the EVSE list of a Location PATCH undefined: here
each EVSE it carries is a whole EVSE that replaces the one with the same `uid` (others untouched).
A PATCH is merged into the stored object and the result re-validated as a whole object, so a
patch can never leave a Location the spec would refuse.
"""

from __future__ import annotations

from datetime import datetime
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import selectinload

from ems.core.context import EmsContext
from ems.core.events import LocationChanged
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.errors import OcpiError
from ems.ocpi.partners import Caller
from ems.ocpi.schemas import EVSE, Connector, ConnectorPatch, EvsePatch, Location, LocationPatch
from ems.ocpi.sessions import PushOutcome, check_party, check_url_matches
from ems.ocpi.status import OcpiStatus
from ems.store.db import transaction
from ems.store.models import Connector as ConnectorRow
from ems.store.models import Evse as EvseRow
from ems.store.models import Location as LocationRow


def _dump(model: BaseModel, *, exclude: set[str] | None = None, unset: bool = False) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=not unset, exclude_unset=unset, exclude=exclude)


def _find_location(db: DbSession, partner_id: int, cc: str, pid: str, location_id: str) -> LocationRow | None:
    return db.scalars(
        select(LocationRow)
        .where(
            LocationRow.partner_id == partner_id,
            LocationRow.country_code == cc.upper(),
            LocationRow.party_id == pid.upper(),
            LocationRow.location_id == location_id,
        )
        .options(selectinload(LocationRow.evses).selectinload(EvseRow.connectors))
    ).one_or_none()


def _require_location(db: DbSession, caller: Caller, cc: str, pid: str, location_id: str) -> LocationRow:
    row = _find_location(db, caller.partner_id, cc, pid, location_id)
    if row is None:
        raise OcpiError(
            OcpiStatus.UNKNOWN_LOCATION, f"unknown location {cc}/{pid}/{location_id}", HTTPStatus.NOT_FOUND
        )
    return row


def _find_evse(location: LocationRow, evse_uid: str) -> EvseRow | None:
    return next((e for e in location.evses if e.uid == evse_uid), None)


def _require_evse(location: LocationRow, evse_uid: str) -> EvseRow:
    evse = _find_evse(location, evse_uid)
    if evse is None:
        raise OcpiError(
            OcpiStatus.UNKNOWN_LOCATION,
            f"unknown EVSE {evse_uid} in location {location.location_id}",
            HTTPStatus.NOT_FOUND,
        )
    return evse


def _find_connector(evse: EvseRow, connector_id: str) -> ConnectorRow | None:
    return next((c for c in evse.connectors if c.connector_id == connector_id), None)


def _require_connector(evse: EvseRow, connector_id: str) -> ConnectorRow:
    connector = _find_connector(evse, connector_id)
    if connector is None:
        raise OcpiError(
            OcpiStatus.UNKNOWN_LOCATION,
            f"unknown connector {connector_id} of EVSE {evse.uid}",
            HTTPStatus.NOT_FOUND,
        )
    return connector


def _fill_connector(row: ConnectorRow, connector: Connector) -> None:
    row.connector_id = connector.id
    row.standard = str(connector.standard)
    row.power_type = str(connector.power_type)
    row.max_voltage = connector.max_voltage
    row.max_amperage = connector.max_amperage
    row.max_electric_power = connector.max_electric_power
    row.data = _dump(connector)
    row.last_updated = connector.last_updated


def _fill_evse(row: EvseRow, evse: EVSE) -> None:
    row.uid = evse.uid
    row.evse_id = evse.evse_id
    row.status = str(evse.status)
    row.capabilities = [str(c) for c in evse.capabilities or []]
    row.data = _dump(evse, exclude={"connectors"})
    row.last_updated = evse.last_updated
    existing = {c.connector_id: c for c in row.connectors}
    connectors: list[ConnectorRow] = []
    for position, connector in enumerate(evse.connectors):
        connector_row = existing.get(connector.id) or ConnectorRow()
        _fill_connector(connector_row, connector)
        connector_row.position = position
        connectors.append(connector_row)
    row.connectors = connectors


def _replace_evses(row: LocationRow, evses: list[EVSE]) -> None:
    """The location's EVSEs become `evses`, in order; rows of EVSEs that stay are updated in place."""
    existing = {e.uid: e for e in row.evses}
    rows: list[EvseRow] = []
    for position, evse in enumerate(evses):
        evse_row = existing.get(evse.uid) or EvseRow(connectors=[])
        _fill_evse(evse_row, evse)
        evse_row.position = position
        rows.append(evse_row)
    row.evses = rows


def _fill_location(row: LocationRow, location: Location) -> None:
    row.time_zone = location.time_zone
    row.data = _dump(location, exclude={"evses"})
    row.last_updated = location.last_updated


def _bump(row: LocationRow | EvseRow, last_updated: datetime) -> None:
    """Propagate a child's `last_updated` to its parent (never backwards)."""
    if last_updated > row.last_updated:
        row.last_updated = last_updated
        row.data = {**row.data, "last_updated": format_ocpi_datetime(last_updated)}


def _validated(model: type[BaseModel], data: dict[str, Any], what: str) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise OcpiError(
            OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
            f"{what} after the PATCH is invalid: {where}: {first['msg']}",
        ) from exc


def evse_to_ocpi(row: EvseRow) -> dict[str, Any]:
    return {**row.data, "connectors": [dict(c.data) for c in row.connectors]}


def location_to_ocpi(row: LocationRow) -> dict[str, Any]:
    return {**row.data, "evses": [evse_to_ocpi(e) for e in row.evses]}


def _publish(
    ctx: EmsContext,
    caller: Caller,
    cc: str,
    pid: str,
    location_id: str,
    evse_uid: str | None,
    connector_id: str | None,
) -> None:
    ctx.bus.publish(
        LocationChanged(
            caller.partner_id, cc.upper(), pid.upper(), location_id, evse_uid, connector_id, ctx.clock.now()
        )
    )


def put_location(
    ctx: EmsContext, caller: Caller, cc: str, pid: str, location_id: str, body: Location
) -> PushOutcome:
    check_url_matches({"country_code": cc, "party_id": pid, "id": location_id}, body.model_dump())
    with transaction(ctx.db) as db:
        check_party(caller, cc, pid)
        row = _find_location(db, caller.partner_id, cc, pid, location_id)
        if row is not None and body.last_updated < row.last_updated:
            return PushOutcome(created=False, ignored=True)
        created = row is None
        if row is None:
            row = LocationRow(
                partner_id=caller.partner_id,
                country_code=cc.upper(),
                party_id=pid.upper(),
                location_id=location_id,
            )
            db.add(row)
        _fill_location(row, body)
        _replace_evses(row, body.evses or [])
    _publish(ctx, caller, cc, pid, location_id, None, None)
    return PushOutcome(created=created)


def put_evse(
    ctx: EmsContext, caller: Caller, cc: str, pid: str, location_id: str, evse_uid: str, body: EVSE
) -> PushOutcome:
    check_url_matches({"uid": evse_uid}, body.model_dump())
    with transaction(ctx.db) as db:
        check_party(caller, cc, pid)
        location = _require_location(db, caller, cc, pid, location_id)
        row = _find_evse(location, evse_uid)
        if row is not None and body.last_updated < row.last_updated:
            return PushOutcome(created=False, ignored=True)
        created = row is None
        if row is None:
            row = EvseRow(connectors=[], position=len(location.evses))
            location.evses.append(row)
        _fill_evse(row, body)
        _bump(location, body.last_updated)
    _publish(ctx, caller, cc, pid, location_id, evse_uid, None)
    return PushOutcome(created=created)


def put_connector(
    ctx: EmsContext,
    caller: Caller,
    cc: str,
    pid: str,
    location_id: str,
    evse_uid: str,
    connector_id: str,
    body: Connector,
) -> PushOutcome:
    check_url_matches({"id": connector_id}, body.model_dump())
    with transaction(ctx.db) as db:
        check_party(caller, cc, pid)
        location = _require_location(db, caller, cc, pid, location_id)
        evse = _require_evse(location, evse_uid)
        row = _find_connector(evse, connector_id)
        if row is not None and body.last_updated < row.last_updated:
            return PushOutcome(created=False, ignored=True)
        created = row is None
        if row is None:
            row = ConnectorRow(position=len(evse.connectors))
            evse.connectors.append(row)
        _fill_connector(row, body)
        _bump(evse, body.last_updated)
        _bump(location, body.last_updated)
    _publish(ctx, caller, cc, pid, location_id, evse_uid, connector_id)
    return PushOutcome(created=created)


def patch_location(
    ctx: EmsContext, caller: Caller, cc: str, pid: str, location_id: str, patch: LocationPatch
) -> PushOutcome:
    changes = _dump(patch, unset=True)
    check_url_matches({"country_code": cc, "party_id": pid, "id": location_id}, changes)
    with transaction(ctx.db) as db:
        check_party(caller, cc, pid)
        row = _require_location(db, caller, cc, pid, location_id)
        if patch.last_updated < row.last_updated:
            return PushOutcome(created=False, ignored=True)
        merged = {**location_to_ocpi(row), **changes}
        if "evses" in changes:
            by_uid = {e["uid"]: e for e in location_to_ocpi(row)["evses"]}
            for evse in changes["evses"]:
                by_uid[evse["uid"]] = evse
            merged["evses"] = list(by_uid.values())
        location = _validated(Location, merged, "the location")
        _fill_location(row, location)
        _replace_evses(row, location.evses or [])
    _publish(ctx, caller, cc, pid, location_id, None, None)
    return PushOutcome(created=False)


def patch_evse(
    ctx: EmsContext, caller: Caller, cc: str, pid: str, location_id: str, evse_uid: str, patch: EvsePatch
) -> PushOutcome:
    changes = _dump(patch, unset=True)
    check_url_matches({"uid": evse_uid}, changes)
    with transaction(ctx.db) as db:
        check_party(caller, cc, pid)
        location = _require_location(db, caller, cc, pid, location_id)
        row = _require_evse(location, evse_uid)
        if patch.last_updated < row.last_updated:
            return PushOutcome(created=False, ignored=True)
        evse = _validated(EVSE, {**evse_to_ocpi(row), **changes}, f"EVSE {evse_uid}")
        _fill_evse(row, evse)
        _bump(location, patch.last_updated)
    _publish(ctx, caller, cc, pid, location_id, evse_uid, None)
    return PushOutcome(created=False)


def patch_connector(
    ctx: EmsContext,
    caller: Caller,
    cc: str,
    pid: str,
    location_id: str,
    evse_uid: str,
    connector_id: str,
    patch: ConnectorPatch,
) -> PushOutcome:
    changes = _dump(patch, unset=True)
    check_url_matches({"id": connector_id}, changes)
    with transaction(ctx.db) as db:
        check_party(caller, cc, pid)
        location = _require_location(db, caller, cc, pid, location_id)
        evse = _require_evse(location, evse_uid)
        row = _require_connector(evse, connector_id)
        if patch.last_updated < row.last_updated:
            return PushOutcome(created=False, ignored=True)
        connector = _validated(Connector, {**row.data, **changes}, f"connector {connector_id}")
        _fill_connector(row, connector)
        _bump(evse, patch.last_updated)
        _bump(location, patch.last_updated)
    _publish(ctx, caller, cc, pid, location_id, evse_uid, connector_id)
    return PushOutcome(created=False)


def get_object(
    ctx: EmsContext,
    caller: Caller,
    cc: str,
    pid: str,
    location_id: str,
    evse_uid: str | None = None,
    connector_id: str | None = None,
) -> dict[str, Any]:
    with ctx.db() as db:
        check_party(caller, cc, pid)
        location = _require_location(db, caller, cc, pid, location_id)
        if evse_uid is None:
            return location_to_ocpi(location)
        evse = _require_evse(location, evse_uid)
        if connector_id is None:
            return evse_to_ocpi(evse)
        connector = _require_connector(evse, connector_id)
        return dict(connector.data)
