"""The virtual CPO: the CPO's side of a replay, played against a real (in-memory) EMS.

`_ems` builds that EMS (a simulated clock, the site stored, one registered CPO); `_VirtualCpo`
pushes each car's session through the OCPI services the API uses (its start, the driver's
preferences, meter updates, its end); `InProcessSink` is where the EMS's Dispatcher delivers
profiles (what a profile lets a car draw over a step is `ems.replay.cars.draw_step`'s). Apart
from the engine, whose loop only drives them step by step.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session as DbSession

from ems.core.clock import ManualClock
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.drivers.view import DriverPreferences, save_preferences
from ems.ocpi.partners import Caller, PartnerStatus
from ems.ocpi.profiles import ProfileCallOutcome
from ems.ocpi.schemas import ChargingPreferences, Session, SessionPatch
from ems.ocpi.sessions import patch_sessions, put_charging_preferences, put_session
from ems.ocpi.tokens import new_token, token_digest
from ems.replay.cars import Car
from ems.sites import import_site
from ems.store.db import transaction
from ems.store.models import ChargingSession, Partner, ProfileRequest
from grid_models.site import Site
from grid_models.sitefile import site_to_dict

CPO_COUNTRY = "FR"
CPO_PARTY = "RPL"
LOCATION_ID = "replay"

_SESSION_IDS = select(ChargingSession.partner_id, ChargingSession.session_id).where(
    ChargingSession.id == bindparam("pk")
)
_REQUESTS: Table = ProfileRequest.__table__  # type: ignore[assignment]
_LOG_REQUEST = insert(_REQUESTS)


class InProcessSink:
    """The CPO end of dispatch in replay: records each profile as the car's limit from now on.

    Like the OCPI client it logs a `ProfileRequest` (the needs estimation reads which limit
    was in force); `accept=False` is a CPO without smart charging (NOT_SUPPORTED): its cars
    draw their full power, which is what the `uncontrolled` site does.
    """

    def __init__(self, ctx: EmsContext, accept: bool = True) -> None:
        self.ctx = ctx
        self.accept = accept
        self.profiles: dict[int, dict[str, Any]] = {}
        self.calls = 0
        self._sessions: dict[int, tuple[int, str]] = {}
        """(partner, OCPI id) of each session key: they never change, so are read once."""
        self._pending: list[dict[str, Any]] = []

    def _log(self, session_pk: int, kind: str, profile: dict[str, Any] | None, answer: str) -> str:
        request_id = str(uuid.uuid4())
        self._pending.append(
            {
                "request_id": request_id,
                "session_pk": session_pk,
                "kind": kind,
                "charging_profile": profile,
                "sent_at": self.ctx.clock.now(),
                "response_result": answer,
                "result": "ACCEPTED" if answer == "ACCEPTED" else None,
            }
        )
        return request_id

    def write_pending(self, db: DbSession) -> None:
        """Store the requests logged since the last call, in the dispatcher's transaction that
        records their answers (one insert for a run's calls instead of one transaction each)."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        for row in rows:
            session_pk = row["session_pk"]
            known = self._sessions.get(session_pk)
            if known is None:
                found = db.execute(_SESSION_IDS, {"pk": session_pk}).one_or_none()
                if found is None:
                    raise ValueError(f"no session with key {session_pk}")
                known = self._sessions[session_pk] = (found[0], found[1])
            row["partner_id"], row["session_id"] = known
        db.execute(_LOG_REQUEST, rows)

    def send_profile(self, session_pk: int, charging_profile: dict[str, Any]) -> ProfileCallOutcome:
        self.calls += 1
        answer = "ACCEPTED" if self.accept else "NOT_SUPPORTED"
        request_id = self._log(session_pk, "set", charging_profile, answer)
        if self.accept:
            self.profiles[session_pk] = charging_profile
        return ProfileCallOutcome(request_id, answer, 30, None)

    def clear_profile(self, session_pk: int) -> ProfileCallOutcome:
        self.calls += 1
        self.profiles.pop(session_pk, None)
        return ProfileCallOutcome(self._log(session_pk, "clear", None, "ACCEPTED"), "ACCEPTED", 30, None)


class _VirtualCpo:
    """Pushes the cars' sessions to the EMS through the OCPI services, as a CPO would."""

    def __init__(self, ctx: EmsContext, caller: Caller, voltage_v: float) -> None:
        self.ctx = ctx
        self.caller = caller
        self.voltage_v = voltage_v

    def _token(self, car: Car) -> dict[str, Any]:
        return {
            "country_code": CPO_COUNTRY,
            "party_id": CPO_PARTY,
            "uid": car.log.token_uid[:36],
            "type": "RFID",
            "contract_id": car.log.token_uid[:36],
        }

    def arrive(self, car: Car, now: datetime) -> None:
        body = Session.model_validate(
            {
                "country_code": CPO_COUNTRY,
                "party_id": CPO_PARTY,
                "id": car.log.session_id,
                "start_date_time": car.log.arrival,
                "kwh": 0.0,
                "cdr_token": self._token(car),
                "auth_method": "WHITELIST",
                "location_id": LOCATION_ID,
                "evse_uid": car.log.evse_uid,
                "connector_id": car.log.connector_id,
                "currency": "EUR",
                "status": "ACTIVE",
                "last_updated": now,
            }
        )
        put_session(self.ctx, self.caller, CPO_COUNTRY, CPO_PARTY, car.log.session_id, body)
        with self.ctx.db() as db:
            car.pk = db.scalar(
                select(ChargingSession.id).where(
                    ChargingSession.partner_id == self.caller.partner_id,
                    ChargingSession.session_id == car.log.session_id,
                )
            )
        if (
            car.log.soc_arrival_pct is not None
            and car.log.declared_departure is not None
            and car.pk is not None
        ):
            # The OCPI preferences carry no state of charge: drivers state it in the widget.
            save_preferences(
                self.ctx,
                car.pk,
                DriverPreferences(
                    departure=car.log.declared_departure,
                    soc_arrival_pct=car.log.soc_arrival_pct,
                    energy_need_kwh=car.log.declared_energy_kwh,
                    battery_capacity_kwh=car.log.battery_capacity_kwh,
                ),
            )
        elif car.log.declared_departure is not None or car.log.declared_energy_kwh is not None:
            prefs = ChargingPreferences.model_validate(
                {
                    "profile_type": "REGULAR",
                    "departure_time": car.log.declared_departure,
                    "energy_need": car.log.declared_energy_kwh,
                }
            )
            put_charging_preferences(self.ctx, self.caller, CPO_COUNTRY, CPO_PARTY, car.log.session_id, prefs)

    def draw(self, car: Car, t0: datetime, power_kw: float, step_h: float) -> None:
        """Meter the step: a new charging period whenever the power changes."""
        if car.open_start is None or abs(power_kw - car.open_power_kw) > 1e-9:
            self._close_period(car, t0)
            car.open_start, car.open_power_kw = t0, power_kw
        car.open_energy_kwh += power_kw * step_h
        car.kwh += power_kw * step_h

    def _close_period(self, car: Car, end: datetime) -> None:
        if car.open_start is None or end <= car.open_start:
            return
        hours = (end - car.open_start).total_seconds() / 3600.0
        power = car.open_energy_kwh / hours
        current = power * 1000.0 / (self.voltage_v * car.phases_drawn)
        car.closed.append(
            {
                "start_date_time": car.open_start,
                "dimensions": [
                    {"type": "ENERGY", "volume": round(car.open_energy_kwh, 6)},
                    {"type": "POWER", "volume": round(power, 6)},
                    {"type": "CURRENT", "volume": round(current, 4)},
                ],
            }
        )
        car.open_start, car.open_energy_kwh = None, 0.0

    def _update(self, car: Car, now: datetime) -> tuple[str, SessionPatch] | None:
        """The PATCH of what changed since the last push: kwh and the periods closed since.

        The running period is cut here and goes on in a new one, as a CPO's periodic meter
        update does: without it a car drawing a steady power would never show the EMS how
        many phases it uses or whether it limits itself.
        """
        if car.open_start is not None and car.open_start < now:
            power = car.open_power_kw
            self._close_period(car, now)
            car.open_start, car.open_power_kw = now, power
        if car.pk is None or (not car.closed and abs(car.kwh - car.patched_kwh) < 1e-9):
            return None
        body: dict[str, Any] = {"kwh": round(car.kwh, 6), "last_updated": now}
        if car.closed:
            body["charging_periods"] = car.closed
        car.closed = []
        car.patched_kwh = car.kwh
        return car.log.session_id, SessionPatch.model_validate(body)

    def _push(self, patches: list[tuple[str, SessionPatch]]) -> None:
        """One simulated step's PATCHes, as the OCPI service applies them, in one transaction."""
        patch_sessions(self.ctx, self.caller, CPO_COUNTRY, CPO_PARTY, patches)

    def flush(self, cars: Iterable[Car], now: datetime) -> None:
        """Meter updates of every car that drew since its last one."""
        self._push([update for car in cars if (update := self._update(car, now)) is not None])

    def leave(self, leaving: Iterable[tuple[Car, datetime]], now: datetime) -> None:
        """Cars that left: each one's last meter update, then COMPLETED."""
        patches: list[tuple[str, SessionPatch]] = []
        for car, draw_end_at in leaving:
            self._close_period(car, draw_end_at)
            update = self._update(car, now)
            if update is not None:
                patches.append(update)
            body = SessionPatch.model_validate(
                {
                    "status": "COMPLETED",
                    "end_date_time": max(car.log.departure, car.log.arrival),
                    "kwh": round(car.kwh, 6),
                    "last_updated": now,
                }
            )
            patches.append((car.log.session_id, body))
        self._push(patches)


def _ems(site: Site, start: datetime) -> tuple[EmsContext, Caller]:
    """A fresh in-memory EMS on a simulated clock, the site stored, one registered CPO."""
    ctx = EmsContext.create(Settings(database_url="sqlite://", sqlite_synchronous="OFF"))
    ctx.clock = ManualClock(start)
    import_site(ctx, site_to_dict(site))
    with transaction(ctx.db) as db:
        partner = Partner(
            country_code=CPO_COUNTRY,
            party_id=CPO_PARTY,
            role="CPO",
            status=PartnerStatus.REGISTERED,
            roles=[
                {
                    "role": "CPO",
                    "country_code": CPO_COUNTRY,
                    "party_id": CPO_PARTY,
                    "business_details": {"name": "Replay CPO"},
                }
            ],
            endpoints=[],
            version="2.2.1",
            token_incoming=new_token(),
            token_incoming_sha256="",
            token_outgoing=new_token(),
        )
        partner.token_incoming_sha256 = token_digest(partner.token_incoming or "")
        db.add(partner)
        db.flush()
        caller = Caller.of(partner, with_token_a=False)
    return ctx, caller
