"""Simulated OCPP 1.6J charge points: real `ocpp` clients that charge simulated vehicles.

One per site charge point, each site connector an OCPP connector (1, 2, … in site order) and an
OCPI EVSE. A visit: StatusNotification Preparing, Authorize, StartTransaction, then every
`meter_interval_s` of simulated time MeterValues, until the departure: StopTransaction.

Energy is integrated piecewise: the drawn power is recomputed whenever the limit may change (a
new or cleared profile, a profile period boundary, a sample), so a limit takes effect at once
and energy stays exact between samples. The vehicle stops drawing when it has its true energy
need; the driver still leaves at the logged departure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ocpp.v16 import call, call_result
from ocpp.v16.datatypes import MeterValue, SampledValue
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    ChargePointErrorCode,
    ChargePointStatus,
    ChargingProfileStatus,
    ClearChargingProfileStatus,
    GetCompositeScheduleStatus,
    Location,
    Measurand,
    ReadingContext,
    Reason,
    UnitOfMeasure,
)

from grid_models import ChargePoint as SiteChargePoint
from grid_models import Connector as SiteConnector

from ._ocpp import Connection, OcppChargePoint, on
from .limits import (
    CHARGE_POINT_MAX_PROFILE,
    TX_DEFAULT_PROFILE,
    TX_PROFILE,
    StoredProfile,
    VehicleDemand,
    Wiring,
    composite_limit_w,
    draw_power_w,
    floor_one_decimal,
    format_ocpp_time,
    offered_current_a,
)
from .simtime import SimClock

LOG = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]
"""Where a charge point reports what happened: (kind, details)."""


def _no_events(kind: str, details: dict[str, Any]) -> None:
    return None


@dataclass(frozen=True)
class Vehicle:
    """A simulated vehicle: what it can draw and what it truly needs."""

    session_id: str
    token_uid: str
    max_power_kw: float | None
    phases: int
    energy_need_kwh: float
    departure: datetime
    capacity_kwh: float | None = None
    soc_arrival_pct: float | None = None


@dataclass
class ConnectorState:
    number: int
    site: SiteConnector
    wiring: Wiring
    status: str = ChargePointStatus.available
    vehicle: Vehicle | None = None
    transaction_id: int | None = None
    transaction_start: datetime | None = None
    meter_wh: float = 0.0
    delivered_wh: float = 0.0
    power_w: float = 0.0
    limit_w: float | None = None
    last_update: datetime | None = None
    profiles: dict[int, StoredProfile] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def grid_phases_drawn(self) -> tuple[str, ...]:
        drawn = self.wiring.phases_drawn(self.vehicle.phases if self.vehicle else None)
        return tuple(self.site.phases[:drawn])

    @property
    def remaining_wh(self) -> float:
        if self.vehicle is None:
            return 0.0
        return max(0.0, self.vehicle.energy_need_kwh * 1000.0 - self.delivered_wh)


def wiring_of(connector: SiteConnector, phase_voltage_v: float) -> Wiring:
    return Wiring(
        phase_voltage_v=phase_voltage_v,
        connector_phases=len(connector.phases),
        max_current_a=connector.max_current_a,
        min_current_a=connector.min_current_a,
        dc=connector.power_type == "DC",
    )


class SimulatedChargePoint(OcppChargePoint):  # type: ignore[misc]
    """The charge point end of OCPP 1.6J, with the vehicles plugged into it."""

    def __init__(
        self,
        charge_point: SiteChargePoint,
        connection: Connection,
        phase_voltage_v: float,
        clock: SimClock,
        meter_interval_s: float = 60.0,
        events: EventSink = _no_events,
        response_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(charge_point.id, connection, response_timeout=response_timeout_s)
        self.clock = clock
        self.meter_interval_s = meter_interval_s
        self.events = events
        self.connectors = {
            n: ConnectorState(n, c, wiring_of(c, phase_voltage_v))
            for n, c in enumerate(charge_point.connectors, start=1)
        }
        self.station_profiles: dict[int, StoredProfile] = {}
        """Profiles set on connector 0: ChargePointMaxProfile and TxDefaultProfile for all."""
        self.heartbeat_interval_s = 300.0

    # ---- what the charge point computes -------------------------------------------------------

    def profiles_for(self, conn: ConnectorState) -> dict[str, list[StoredProfile]]:
        by_purpose: dict[str, list[StoredProfile]] = {}
        for profile in [*self.station_profiles.values(), *conn.profiles.values()]:
            by_purpose.setdefault(profile.purpose, []).append(profile)
        return by_purpose

    def limit_w(self, conn: ConnectorState, now: datetime) -> float | None:
        phases = conn.wiring.phases_drawn(conn.vehicle.phases if conn.vehicle else None)
        return composite_limit_w(
            self.profiles_for(conn), now, conn.transaction_start, conn.transaction_id, conn.wiring, phases
        )

    def advance(self, conn: ConnectorState, now: datetime) -> None:
        """Integrate energy at the power drawn since the last update, then recompute the power."""
        if conn.last_update is not None and now > conn.last_update and conn.transaction_id is not None:
            energy_wh = conn.power_w * (now - conn.last_update).total_seconds() / 3600.0
            energy_wh = min(energy_wh, conn.remaining_wh)
            conn.meter_wh += energy_wh
            conn.delivered_wh += energy_wh
        if conn.last_update is None or now > conn.last_update:
            conn.last_update = now
        conn.limit_w = self.limit_w(conn, now)
        if conn.vehicle is None or conn.transaction_id is None:
            conn.power_w = 0.0
            return
        demand = VehicleDemand(conn.vehicle.max_power_kw, conn.vehicle.phases, conn.remaining_wh)
        conn.power_w = draw_power_w(conn.wiring, demand, conn.limit_w)

    def next_change(self, conn: ConnectorState, now: datetime, until: datetime) -> datetime:
        moments = {until}
        for profiles in self.profiles_for(conn).values():
            for profile in profiles:
                moments |= profile.boundaries(conn.transaction_start, now, until)
        return min(moments)

    def soc_pct(self, conn: ConnectorState) -> float | None:
        vehicle = conn.vehicle
        if vehicle is None or vehicle.soc_arrival_pct is None or not vehicle.capacity_kwh:
            return None
        return min(100.0, vehicle.soc_arrival_pct + conn.delivered_wh / 10.0 / vehicle.capacity_kwh)

    def meter_value(self, conn: ConnectorState, now: datetime, context: str) -> MeterValue:
        """One sample: energy register, power, current per grid phase, offered current, SoC."""
        drawn = conn.grid_phases_drawn
        per_phase_a = conn.power_w / (conn.wiring.phase_voltage_v * len(drawn)) if drawn else 0.0

        def sample(value: float, measurand: str, unit: str, phase: str | None = None) -> SampledValue:
            return SampledValue(
                value=f"{value:.1f}" if unit != UnitOfMeasure.wh else f"{value:.0f}",
                context=context,
                measurand=measurand,
                phase=phase,
                location=Location.outlet,
                unit=unit,
            )

        values = [
            sample(conn.meter_wh, Measurand.energy_active_import_register, UnitOfMeasure.wh),
            sample(conn.power_w, Measurand.power_active_import, UnitOfMeasure.w),
        ]
        values += [
            sample(per_phase_a if p in drawn else 0.0, Measurand.current_import, UnitOfMeasure.a, p)
            for p in conn.site.phases
        ]
        phases = max(1, len(drawn))
        values.append(
            sample(
                floor_one_decimal(offered_current_a(conn.wiring, conn.limit_w, phases)),
                Measurand.current_offered,
                UnitOfMeasure.a,
            )
        )
        soc = self.soc_pct(conn)
        if soc is not None:
            values.append(sample(soc, Measurand.soc, UnitOfMeasure.percent))
        return MeterValue(timestamp=format_ocpp_time(now), sampled_value=values)

    # ---- handlers: what the central system asks ----------------------------------------------

    @on(Action.set_charging_profile)
    def on_set_charging_profile(
        self, connector_id: int, cs_charging_profiles: dict[str, Any], **kwargs: Any
    ) -> call_result.SetChargingProfile:
        now = self.clock.now()
        rejected = call_result.SetChargingProfile(status=ChargingProfileStatus.rejected)
        try:
            profile = StoredProfile.from_ocpp(cs_charging_profiles)
        except (KeyError, ValueError) as exc:
            self.events("profile_rejected", {"cp_id": self.id, "connector_id": connector_id, "why": str(exc)})
            return rejected
        if profile.purpose == CHARGE_POINT_MAX_PROFILE:
            if connector_id != 0:
                return rejected
            targets = list(self.connectors.values())
            store = self.station_profiles
        elif connector_id == 0:
            if profile.purpose != TX_DEFAULT_PROFILE:
                return rejected
            targets = list(self.connectors.values())
            store = self.station_profiles
        else:
            conn = self.connectors.get(connector_id)
            if conn is None:
                return rejected
            if profile.purpose == TX_PROFILE and (
                conn.transaction_id is None
                or (profile.transaction_id is not None and profile.transaction_id != conn.transaction_id)
            ):
                # OCPP 1.6: a TxProfile without an ongoing transaction (or for another one) is refused.
                self.events(
                    "profile_rejected",
                    {"cp_id": self.id, "connector_id": connector_id, "why": "no such transaction"},
                )
                return rejected
            targets = [conn]
            store = conn.profiles
        for conn in targets:
            self.advance(conn, now)  # energy so far at the old limit
        # Same id anywhere, or same stack level and purpose here: replaced (OCPP 1.6 §3.13.2).
        for holder in [self.station_profiles, *(c.profiles for c in self.connectors.values())]:
            holder.pop(profile.profile_id, None)
        for key, old in list(store.items()):
            if old.stack_level == profile.stack_level and old.purpose == profile.purpose:
                del store[key]
        store[profile.profile_id] = profile
        for conn in targets:
            self.advance(conn, now)
            conn.changed.set()
        self.events(
            "profile_applied",
            {
                "cp_id": self.id,
                "connector_id": connector_id,
                "profile_id": profile.profile_id,
                "purpose": profile.purpose,
                "unit": profile.unit,
                "limits": [p.limit for p in profile.periods],
                "power_w": [round(c.power_w, 1) for c in targets],
                "at": format_ocpp_time(now),
            },
        )
        return call_result.SetChargingProfile(status=ChargingProfileStatus.accepted)

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(
        self,
        id: int | None = None,
        connector_id: int | None = None,
        charging_profile_purpose: str | None = None,
        stack_level: int | None = None,
        **kwargs: Any,
    ) -> call_result.ClearChargingProfile:
        now = self.clock.now()
        removed = 0
        everywhere = list(self.connectors.values())
        holders: list[tuple[dict[int, StoredProfile], list[ConnectorState], int]] = [
            (self.station_profiles, everywhere, 0)
        ]
        holders += [(c.profiles, [c], c.number) for c in everywhere]
        for store, affected, number in holders:
            for key, profile in list(store.items()):
                if id is not None:
                    match = profile.profile_id == id
                else:
                    match = (
                        connector_id in (None, number)
                        and charging_profile_purpose in (None, profile.purpose)
                        and stack_level in (None, profile.stack_level)
                    )
                if not match:
                    continue
                for conn in affected:
                    self.advance(conn, now)  # energy so far at the old limit
                del store[key]
                removed += 1
                for conn in affected:
                    self.advance(conn, now)
                    conn.changed.set()
        self.events("profile_cleared", {"cp_id": self.id, "removed": removed, "at": format_ocpp_time(now)})
        status = ClearChargingProfileStatus.accepted if removed else ClearChargingProfileStatus.unknown
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(
        self, connector_id: int, duration: int, charging_rate_unit: str | None = None, **kwargs: Any
    ) -> call_result.GetCompositeSchedule:
        conn = self.connectors.get(connector_id) if connector_id else next(iter(self.connectors.values()))
        if conn is None or duration <= 0:
            return call_result.GetCompositeSchedule(status=GetCompositeScheduleStatus.rejected)
        now = self.clock.now()
        unit = charging_rate_unit or ("W" if conn.wiring.dc else "A")
        schedule = self.composite_schedule(conn, now, duration, unit)
        return call_result.GetCompositeSchedule(
            status=GetCompositeScheduleStatus.accepted,
            connector_id=connector_id,
            schedule_start=format_ocpp_time(now),
            charging_schedule=schedule,
        )

    def composite_schedule(
        self, conn: ConnectorState, now: datetime, duration_s: int, unit: str
    ) -> dict[str, Any]:
        """The limit in force over [now, now + duration], one period per change.

        Where no profile is in force the connector's own maximum shows, as OCPI asks of the
        ActiveChargingProfile.
        """
        phases = conn.wiring.phases_drawn(conn.vehicle.phases if conn.vehicle else None)
        end = now + timedelta(seconds=duration_s)
        moments = [now]
        for profiles in self.profiles_for(conn).values():
            for profile in profiles:
                moments += sorted(
                    profile.boundaries(conn.transaction_start, now, end - timedelta(microseconds=1))
                )
        periods: list[dict[str, Any]] = []
        for moment in sorted(set(moments)):
            limit_w = self.limit_w(conn, moment)
            if unit == "W":
                cap_w = conn.wiring.max_current_a * conn.wiring.phase_voltage_v * phases
                value = floor_one_decimal(cap_w if limit_w is None else min(limit_w, cap_w))
            else:
                value = floor_one_decimal(offered_current_a(conn.wiring, limit_w, phases))
            if periods and periods[-1]["limit"] == value:
                continue
            period: dict[str, Any] = {"start_period": int((moment - now).total_seconds()), "limit": value}
            if unit == "A":
                period["number_phases"] = phases
            periods.append(period)
        return {
            "duration": duration_s,
            "start_schedule": format_ocpp_time(now),
            "charging_rate_unit": unit,
            "charging_schedule_period": periods,
        }

    # ---- what the charge point does on its own ----------------------------------------------

    async def serve(self) -> None:
        """Route incoming frames until the connection closes."""
        with contextlib.suppress(Exception):
            await self.start()

    async def boot(self) -> None:
        reply = await self.call(
            call.BootNotification(charge_point_model="SimAC", charge_point_vendor="OpenSmartCharging")
        )
        self.heartbeat_interval_s = float(reply.interval) if reply and reply.interval else 300.0
        for conn in self.connectors.values():
            await self.set_status(conn, ChargePointStatus.available)

    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            await self.call(call.Heartbeat())

    async def set_status(self, conn: ConnectorState, status: str) -> None:
        if conn.status == status and status != ChargePointStatus.available:
            return
        conn.status = status
        await self.call(
            call.StatusNotification(
                connector_id=conn.number,
                error_code=ChargePointErrorCode.no_error,
                status=status,
                timestamp=format_ocpp_time(self.clock.now()),
            )
        )

    def connector_for(self, evse_uid: str, connector_id: str) -> ConnectorState | None:
        return next(
            (
                c
                for c in self.connectors.values()
                if c.site.evse_uid == evse_uid and c.site.connector_id == connector_id
            ),
            None,
        )

    async def visit(self, conn: ConnectorState, vehicle: Vehicle) -> None:
        """One vehicle from plug-in to plug-out (OCPP 1.6 Core profile messages)."""
        if conn.vehicle is not None:
            self.events("arrival_refused", {"session_id": vehicle.session_id, "why": "connector busy"})
            return
        stopping = False
        try:
            if await self.plug_in(conn, vehicle):
                await self._charge_until_departure(conn, vehicle)
                await self.stop_transaction(conn, min(self.clock.now(), vehicle.departure))
        except asyncio.CancelledError:
            # The simulator is stopping: the transaction is abandoned and nothing more is sent.
            # An unplug's StatusNotification here would wait for an answer that never comes,
            # and hold the process up on SIGTERM until it is killed.
            stopping = True
            raise
        finally:
            if not stopping:
                with contextlib.suppress(Exception):
                    await self.unplug(conn)

    async def plug_in(self, conn: ConnectorState, vehicle: Vehicle) -> bool:
        """Preparing, Authorize, StartTransaction; True once the transaction runs."""
        conn.vehicle = vehicle
        conn.delivered_wh = 0.0
        await self.set_status(conn, ChargePointStatus.preparing)
        auth = await self.call(call.Authorize(id_tag=vehicle.token_uid))
        if auth is None or auth.id_tag_info.get("status") != AuthorizationStatus.accepted:
            self.events("authorization_refused", {"session_id": vehicle.session_id})
            return False
        start = self.clock.now()
        started = await self.call(
            call.StartTransaction(
                connector_id=conn.number,
                id_tag=vehicle.token_uid,
                meter_start=round(conn.meter_wh),
                timestamp=format_ocpp_time(start),
            )
        )
        if started is None or started.id_tag_info.get("status") != AuthorizationStatus.accepted:
            self.events("transaction_refused", {"session_id": vehicle.session_id})
            return False
        conn.transaction_id = int(started.transaction_id)
        conn.transaction_start = start
        conn.last_update = start
        self.advance(conn, start)
        self.events(
            "transaction_started",
            {"session_id": vehicle.session_id, "cp_id": self.id, "transaction_id": conn.transaction_id},
        )
        await self.set_status(conn, self._charging_status(conn))
        return True

    async def send_meter_values(self, conn: ConnectorState, at: datetime, context: str) -> None:
        await self.call(
            call.MeterValues(
                connector_id=conn.number,
                transaction_id=conn.transaction_id,
                meter_value=[self.meter_value(conn, at, context)],
            )
        )

    async def stop_transaction(self, conn: ConnectorState, stop: datetime) -> None:
        """Energy up to `stop`, a Transaction.End sample, StopTransaction (EVDisconnected)."""
        assert conn.vehicle is not None and conn.transaction_id is not None
        self.advance(conn, stop)
        await self.send_meter_values(conn, stop, ReadingContext.transaction_end)
        await self.call(
            call.StopTransaction(
                meter_stop=round(conn.meter_wh),
                timestamp=format_ocpp_time(stop),
                transaction_id=conn.transaction_id,
                reason=Reason.ev_disconnected,
                id_tag=conn.vehicle.token_uid,
            )
        )
        self.events(
            "transaction_stopped",
            {
                "session_id": conn.vehicle.session_id,
                "cp_id": self.id,
                "energy_kwh": round(conn.delivered_wh / 1000.0, 3),
                "at": format_ocpp_time(stop),
            },
        )
        conn.transaction_id = None
        await self.set_status(conn, ChargePointStatus.finishing)

    async def unplug(self, conn: ConnectorState) -> None:
        """The vehicle leaves: its TxProfiles go (OCPP 1.6: they live as long as the transaction)."""
        for key, profile in list(conn.profiles.items()):
            if profile.purpose == TX_PROFILE:
                del conn.profiles[key]
        conn.vehicle = None
        conn.transaction_id = None
        conn.transaction_start = None
        conn.power_w = 0.0
        await self.set_status(conn, ChargePointStatus.available)

    def _charging_status(self, conn: ConnectorState) -> str:
        if conn.power_w > 0:
            return str(ChargePointStatus.charging)
        if conn.remaining_wh <= 0:
            return str(ChargePointStatus.suspended_ev)
        return str(ChargePointStatus.suspended_evse)

    async def _charge_until_departure(self, conn: ConnectorState, vehicle: Vehicle) -> None:
        interval = timedelta(seconds=self.meter_interval_s)
        assert conn.transaction_start is not None
        next_sample = conn.transaction_start + interval
        while True:
            now = self.clock.now()
            if now >= vehicle.departure:
                return
            wake_at = self.next_change(conn, now, min(next_sample, vehicle.departure))
            await self.clock.sleep_until(wake_at, conn.changed)
            now = min(self.clock.now(), vehicle.departure)
            self.advance(conn, now)
            if now >= next_sample and now < vehicle.departure:
                await self.send_meter_values(conn, now, ReadingContext.sample_periodic)
                while next_sample <= now:
                    next_sample += interval
            await self.set_status(conn, self._charging_status(conn))
