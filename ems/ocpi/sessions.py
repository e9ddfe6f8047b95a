"""The Sessions receiver: store what a CPO pushes, whole or not at all, and announce it.

PUT replaces the session (its charging periods too); PATCH changes the fields it carries and
*appends* its charging periods. An update older than the stored `last_updated` is ignored, so a
retried or reordered push never rolls a session back. Events go out after the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

from sqlalchemy import Table, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import selectinload

from ems.core.context import EmsContext
from ems.core.events import PreferencesChanged, SessionChange, SessionEvent, SessionKey
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.errors import OcpiError
from ems.ocpi.partners import Caller
from ems.ocpi.schemas import ChargingPreferences, Session, SessionPatch
from ems.ocpi.status import OcpiStatus
from ems.store.db import transaction
from ems.store.models import ChargingPeriod, ChargingPreference, ChargingSession

FINAL_STATUSES = frozenset({"COMPLETED", "INVALID"})

_COLUMNS = (
    "start_date_time",
    "end_date_time",
    "kwh",
    "auth_method",
    "authorization_reference",
    "location_id",
    "evse_uid",
    "connector_id",
    "meter_id",
    "currency",
    "status",
    "last_updated",
)
_JSON_COLUMNS = ("cdr_token", "total_cost")
_KEY_FIELDS = ("country_code", "party_id", "id")


@dataclass(frozen=True)
class PushOutcome:
    created: bool
    ignored: bool = False
    """The push was older than what we hold: acknowledged, not applied."""


def check_party(caller: Caller, country_code: str, party_id: str) -> None:
    """A CPO may push only objects of the parties it registered with."""
    if (country_code.upper(), party_id.upper()) not in caller.parties:
        raise OcpiError(
            OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
            f"country_code/party_id {country_code}/{party_id} in the URL is not a party of yours",
            HTTPStatus.NOT_FOUND,
        )


def check_url_matches(url_values: dict[str, str], body: dict[str, Any]) -> None:
    for field, url_value in url_values.items():
        value = body.get(field)
        if value is not None and str(value).upper() != url_value.upper():
            raise OcpiError(
                OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                f"{field}: {value!r} in the body differs from {url_value!r} in the URL",
            )


def _find(
    db: DbSession, partner_id: int, cc: str, pid: str, session_id: str, *, with_periods: bool = True
) -> ChargingSession | None:
    query = select(ChargingSession).where(
        ChargingSession.partner_id == partner_id,
        ChargingSession.country_code == cc.upper(),
        ChargingSession.party_id == pid.upper(),
        ChargingSession.session_id == session_id,
    )
    if with_periods:
        query = query.options(selectinload(ChargingSession.charging_periods))
    return db.scalars(query).one_or_none()


_SESSIONS: Table = ChargingSession.__table__  # type: ignore[assignment]
_PERIODS: Table = ChargingPeriod.__table__  # type: ignore[assignment]

# The PATCH hot path's statements, built once: building SQLAlchemy expressions per request
# cost about as much as running them.
_SELECT_FOR_PATCHES = select(
    _SESSIONS.c.session_id,
    _SESSIONS.c.id,
    _SESSIONS.c.last_updated,
    _SESSIONS.c.status,
    _SESSIONS.c.start_date_time,
    _SESSIONS.c.end_date_time,
    _SESSIONS.c.extra,
    _SESSIONS.c.location_id,
    _SESSIONS.c.evse_uid,
    _SESSIONS.c.connector_id,
).where(
    _SESSIONS.c.partner_id == bindparam("partner_id"),
    _SESSIONS.c.country_code == bindparam("country_code"),
    _SESSIONS.c.party_id == bindparam("party_id"),
    _SESSIONS.c.session_id.in_(bindparam("session_ids", expanding=True)),
)
_LATER_PERIODS = _PERIODS.alias("later")
_SELECT_TAILS = select(
    _PERIODS.c.session_pk, _PERIODS.c.position, _PERIODS.c.start_date_time, _PERIODS.c.dimensions
).where(
    _PERIODS.c.session_pk.in_(bindparam("session_pks", expanding=True)),
    or_(
        _PERIODS.c.start_date_time >= bindparam("first_start"),
        _PERIODS.c.position
        == select(func.max(_LATER_PERIODS.c.position))
        .where(_LATER_PERIODS.c.session_pk == _PERIODS.c.session_pk)
        .scalar_subquery(),
    ),
)
"""Sessions' periods from the PATCHes' earliest start on, and each one's last: one statement
tells which of the PATCHes' periods are already stored and where the new ones go."""
_INSERT_PERIODS = insert(_PERIODS)
_UPDATE_SESSION = (
    update(_SESSIONS).where(_SESSIONS.c.id == bindparam("b_pk")).values(revision=_SESSIONS.c.revision + 1)
)


def _append_periods(db: DbSession, appends: Sequence[tuple[int, list[Any]]]) -> None:
    """Append PATCHes' charging periods (one PATCH per session) without loading the sessions'
    whole histories.

    A period identical to one already stored (same start and dimensions) is a retried PATCH:
    skipped, so a retry never doubles the energy. Core statements: this is the hot path.
    """
    firsts = {pk: min(p.start_date_time for p in periods) for pk, periods in appends}
    tails: dict[int, list[tuple[int, datetime, Any]]] = {pk: [] for pk in firsts}
    for pk, at, start, dimensions in db.execute(
        _SELECT_TAILS, {"session_pks": list(firsts), "first_start": min(firsts.values())}
    ):
        tails[pk].append((at, start, dimensions))
    rows = []
    for pk, periods in appends:
        position = max((at for at, _, _ in tails[pk]), default=-1)
        stored = {
            (start, repr(dimensions))
            for at, start, dimensions in tails[pk]
            if start >= firsts[pk] or at == position
        }
        for period in periods:
            dimensions = [d.model_dump(mode="json") for d in period.dimensions]
            if (period.start_date_time, repr(dimensions)) in stored:
                continue
            position += 1
            stored.add((period.start_date_time, repr(dimensions)))
            rows.append(
                {
                    "session_pk": pk,
                    "position": position,
                    "start_date_time": period.start_date_time,
                    "dimensions": dimensions,
                    "tariff_id": period.tariff_id,
                }
            )
    if rows:
        db.execute(_INSERT_PERIODS, rows)


def _periods(values: list[Any], start_position: int) -> list[ChargingPeriod]:
    return [
        ChargingPeriod(
            position=start_position + i,
            start_date_time=period.start_date_time,
            dimensions=[d.model_dump(mode="json") for d in period.dimensions],
            tariff_id=period.tariff_id,
        )
        for i, period in enumerate(values)
    ]


def _change(created: bool, old_status: str | None, new_status: str) -> SessionChange | None:
    if created:
        return SessionChange.STOPPED if new_status in FINAL_STATUSES else SessionChange.STARTED
    if old_status not in FINAL_STATUSES and new_status in FINAL_STATUSES:
        return SessionChange.STOPPED
    return SessionChange.UPDATED


def _event(partner_id: int, row: ChargingSession, change: SessionChange, at: datetime) -> SessionEvent:
    key = SessionKey(partner_id, row.country_code, row.party_id, row.session_id)
    return SessionEvent(key, change, row.location_id, row.evse_uid, row.connector_id, row.status, at)


def put_session(
    ctx: EmsContext, caller: Caller, cc: str, pid: str, session_id: str, body: Session
) -> PushOutcome:
    check_url_matches({"country_code": cc, "party_id": pid, "id": session_id}, body.model_dump())
    event: SessionEvent | None = None
    with transaction(ctx.db) as db:
        check_party(caller, cc, pid)
        row = _find(db, caller.partner_id, cc, pid, session_id)
        if row is not None and body.last_updated < row.last_updated:
            return PushOutcome(created=False, ignored=True)
        created = row is None
        old_status = None if row is None else row.status
        if row is None:
            row = ChargingSession(
                partner_id=caller.partner_id,
                country_code=cc.upper(),
                party_id=pid.upper(),
                session_id=session_id,
            )
            db.add(row)
        for name in _COLUMNS:
            setattr(row, name, getattr(body, name))
        for name in _JSON_COLUMNS:
            value = getattr(body, name)
            setattr(row, name, None if value is None else value.model_dump(mode="json", exclude_none=True))
        row.token_uid = body.cdr_token.uid
        if not created:
            row.revision = ChargingSession.revision + 1
        row.extra = dict(body.model_extra or {})
        if row.charging_periods:
            # Old periods go first: the new ones reuse their (session, position) keys.
            row.charging_periods = []
            db.flush()
        row.charging_periods = _periods(list(body.charging_periods or []), 0)
        db.flush()
        change = _change(created, old_status, row.status)
        if change is not None:
            event = _event(caller.partner_id, row, change, ctx.clock.now())
    if event is not None:
        ctx.bus.publish(event)
    return PushOutcome(created=created)


def patch_session(
    ctx: EmsContext, caller: Caller, cc: str, pid: str, session_id: str, patch: SessionPatch
) -> PushOutcome:
    """One PATCH: one transaction, its event published after the commit."""
    with transaction(ctx.db) as db:
        [(outcome, event)] = _apply_patches(db, caller, cc, pid, [(session_id, patch)], ctx.clock.now)
    if event is not None:
        ctx.bus.publish(event)
    return outcome


def patch_sessions(
    ctx: EmsContext, caller: Caller, cc: str, pid: str, patches: Sequence[tuple[str, SessionPatch]]
) -> list[PushOutcome]:
    """Several PATCHes of one party applied as `patch_session` applies each, in one transaction.

    For a caller holding a batch of meter updates at once (the replay's virtual CPO at each
    simulated step): the per-request transaction was about a fifth of a PATCH's cost, and the
    batch reads and writes all its sessions in a few statements instead of four per PATCH. All
    or nothing: a refused PATCH rolls the whole batch back. The events go out after the commit,
    in order. The HTTP API keeps one request, one transaction (`patch_session`).
    """
    if not patches:
        return []
    with transaction(ctx.db) as db:
        applied = _apply_patches(db, caller, cc, pid, patches, ctx.clock.now)
    for _, event in applied:
        if event is not None:
            ctx.bus.publish(event)
    return [outcome for outcome, _ in applied]


def _apply_patches(
    db: DbSession,
    caller: Caller,
    cc: str,
    pid: str,
    patches: Sequence[tuple[str, SessionPatch]],
    now: Callable[[], datetime],
) -> list[tuple[PushOutcome, SessionEvent | None]]:
    """Each PATCH applied as if one after the other: in rounds that take each session's next
    PATCH (a session's PATCHes keep their order; different sessions do not interact)."""
    check_party(caller, cc, pid)
    for session_id, patch in patches:
        check_url_matches(
            {"country_code": cc, "party_id": pid, "id": session_id},
            {k: getattr(patch, k) for k in _KEY_FIELDS if k in patch.model_fields_set},
        )
    applied: list[tuple[PushOutcome, SessionEvent | None] | None] = [None] * len(patches)
    rounds: list[list[int]] = []
    seen: dict[str, int] = {}
    for i, (session_id, _) in enumerate(patches):
        n = seen[session_id] = seen.get(session_id, -1) + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    for indices in rounds:
        for i, result in zip(
            indices, _apply_round(db, caller, cc, pid, [patches[i] for i in indices], now), strict=True
        ):
            applied[i] = result
    return [result for result in applied if result is not None]


def _apply_round(
    db: DbSession,
    caller: Caller,
    cc: str,
    pid: str,
    patches: Sequence[tuple[str, SessionPatch]],
    now: Callable[[], datetime],
) -> list[tuple[PushOutcome, SessionEvent | None]]:
    """PATCHes of distinct sessions: one statement reads them, one per set of changed fields
    writes them, two append their periods."""
    rows = {
        row.session_id: row
        for row in db.execute(
            _SELECT_FOR_PATCHES,
            {
                "partner_id": caller.partner_id,
                "country_code": cc.upper(),
                "party_id": pid.upper(),
                "session_ids": [session_id for session_id, _ in patches],
            },
        )
    }
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    appends: list[tuple[int, list[Any]]] = []
    results: list[tuple[PushOutcome, SessionEvent | None]] = []
    for session_id, patch in patches:
        row = rows.get(session_id)
        if row is None:
            raise OcpiError(
                OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                f"unknown session {cc}/{pid}/{session_id}: PUT it first",
                HTTPStatus.NOT_FOUND,
            )
        if patch.last_updated < row.last_updated:
            results.append((PushOutcome(created=False, ignored=True), None))
            continue
        fields = patch.model_fields_set
        values: dict[str, Any] = {name: getattr(patch, name) for name in _COLUMNS if name in fields}
        for name in _JSON_COLUMNS:
            if name in fields:
                value = getattr(patch, name)
                values[name] = None if value is None else value.model_dump(mode="json", exclude_none=True)
        if "cdr_token" in fields:
            values["token_uid"] = None if patch.cdr_token is None else patch.cdr_token.uid
        if patch.model_extra:
            values["extra"] = {**row.extra, **patch.model_extra}
        start = values.get("start_date_time", row.start_date_time)
        end = values.get("end_date_time", row.end_date_time)
        if end is not None and end < start:
            raise OcpiError(OcpiStatus.INVALID_OR_MISSING_PARAMETERS, "end_date_time: before start_date_time")
        # The SET clause follows the parameters' keys (and always bumps the revision: the
        # periods change the session too): one statement per set of keys.
        updates.setdefault(tuple(sorted(values)), []).append({"b_pk": row.id, **values})
        if patch.charging_periods:
            appends.append((row.id, list(patch.charging_periods)))
        status = values.get("status", row.status)
        change = _change(False, row.status, status)
        event = None
        if change is not None:
            key = SessionKey(caller.partner_id, cc.upper(), pid.upper(), session_id)
            event = SessionEvent(
                key,
                change,
                values.get("location_id", row.location_id),
                values.get("evse_uid", row.evse_uid),
                values.get("connector_id", row.connector_id),
                status,
                now(),
            )
        results.append((PushOutcome(created=False), event))
    for params in updates.values():
        db.execute(_UPDATE_SESSION, params)
    if appends:
        _append_periods(db, appends)
    return results


def session_to_ocpi(row: ChargingSession) -> dict[str, Any]:
    """The session as the CPO pushed it, for GET."""
    data: dict[str, Any] = {
        "country_code": row.country_code,
        "party_id": row.party_id,
        "id": row.session_id,
        "start_date_time": format_ocpi_datetime(row.start_date_time),
        "kwh": row.kwh,
        "cdr_token": row.cdr_token,
        "auth_method": row.auth_method,
        "location_id": row.location_id,
        "evse_uid": row.evse_uid,
        "connector_id": row.connector_id,
        "currency": row.currency,
        "charging_periods": [
            {
                "start_date_time": format_ocpi_datetime(p.start_date_time),
                "dimensions": p.dimensions,
                **({"tariff_id": p.tariff_id} if p.tariff_id else {}),
            }
            for p in row.charging_periods
        ],
        "status": row.status,
        "last_updated": format_ocpi_datetime(row.last_updated),
    }
    optional: dict[str, Any] = {
        "end_date_time": format_ocpi_datetime(row.end_date_time) if row.end_date_time else None,
        "authorization_reference": row.authorization_reference,
        "meter_id": row.meter_id,
        "total_cost": row.total_cost,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    data.update(row.extra)
    return data


def get_session(ctx: EmsContext, caller: Caller, cc: str, pid: str, session_id: str) -> dict[str, Any]:
    with ctx.db() as db:
        check_party(caller, cc, pid)
        row = _find(db, caller.partner_id, cc, pid, session_id)
        if row is None:
            raise OcpiError(
                OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                f"unknown session {cc}/{pid}/{session_id}",
                HTTPStatus.NOT_FOUND,
            )
        return session_to_ocpi(row)


def put_charging_preferences(
    ctx: EmsContext,
    caller: Caller,
    cc: str,
    pid: str,
    session_id: str,
    preferences: ChargingPreferences,
    now: datetime | None = None,
) -> str:
    """The charging_preferences extension: returns a ChargingPreferencesResponse value."""
    now = now or ctx.clock.now()
    with transaction(ctx.db) as db:
        check_party(caller, cc, pid)
        row = _find(db, caller.partner_id, cc, pid, session_id, with_periods=False)
        if row is None:
            raise OcpiError(
                OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                f"unknown session {cc}/{pid}/{session_id}",
                HTTPStatus.NOT_FOUND,
            )
        if row.status in FINAL_STATUSES:
            return "NOT_POSSIBLE"
        if preferences.departure_time is not None and preferences.departure_time <= now:
            return "NOT_POSSIBLE"
        row.revision = ChargingSession.revision + 1
        db.add(
            ChargingPreference(
                session_pk=row.id,
                source="ocpi",
                profile_type=str(preferences.profile_type),
                departure_time=preferences.departure_time,
                energy_need_kwh=preferences.energy_need,
                discharge_allowed=preferences.discharge_allowed,
            )
        )
        key = SessionKey(caller.partner_id, row.country_code, row.party_id, row.session_id)
    ctx.bus.publish(PreferencesChanged(key, "ocpi", now))
    return "ACCEPTED"
