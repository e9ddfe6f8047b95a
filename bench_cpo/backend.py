"""One SCSP's CPO: the CPO simulator's OCPI back-end, fed by simulated cars instead of OCPP.

The bench reuses `examples.cpo_simulator.cpo.CpoBackend` whole (registration, Location,
Session PUT/PATCH from meter readings, charging preferences, the outbox, the result callbacks)
and drives its `Bridge` methods (`transaction_started`, `meter_values`, `transaction_stopped`)
as a central system would, from the bench's own car physics. What differs is the
chargingprofiles Receiver: a profile is not forwarded to a charge point but recorded, with the
simulated instant it arrived, as the limit of that SCSP's copy of the car; every PUT is
answered at once and confirmed by the async ChargingProfileResult callback, as a CPO does.

Pull mode: Session pushes are held back (the SCSP pulls the Sessions SENDER, paginated); the
driver's preferences, which OCPI cannot pull, go out once the SCSP has pulled the session.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ems.ocpi.datetimes import format_ocpi_datetime, parse_ocpi_datetime
from ems.ocpi.schemas import ChargingProfile
from ems.replay.cars import Car, allowed_kw
from ems.replay.log import LoggedSession
from examples.cpo_simulator.cpo import PROFILE_RESULT_TIMEOUT_S, CpoBackend
from examples.cpo_simulator.limits import format_ocpp_time
from examples.cpo_simulator.simtime import SimClock
from examples.cpo_simulator.state import SimulatorState
from grid_models import Site

MODES = ("push", "pull")


@dataclass(frozen=True)
class ReceivedProfile:
    """One chargingprofiles PUT the SCSP made: when it came and what it set (None: cleared)."""

    session_id: str
    at: datetime
    """Simulated instant it reached the bench."""
    real_at_s: float
    """`time.monotonic()` when it reached the bench."""
    profile: dict[str, Any] | None
    """OCPI ChargingProfile JSON with an absolute `start_date_time` (relative ones anchored at the
    session start); None for a DELETE."""


@dataclass
class Ledger:
    """What one SCSP did towards the bench, as the bench saw it on the wire."""

    accepted: list[ReceivedProfile] = field(default_factory=list)
    unknown_session_puts: int = 0
    """PUTs for a session the bench never had, or one already ended."""
    requests: int = 0
    error_answers: dict[str, int] = field(default_factory=dict)
    """Requests of the SCSP the bench had to refuse, by `METHOD module HTTP/OCPI status`."""
    malformed_profiles: int = 0
    """chargingprofiles PUTs refused for their body (not JSON, not a SetChargingProfile)."""
    pushed_at: dict[str, datetime] = field(default_factory=dict)
    """Per session: the simulated instant its start was pushed (or, pulling, became pullable)."""
    real_pushed_at_s: dict[str, float] = field(default_factory=dict)
    pulled: set[str] = field(default_factory=set)
    """Sessions the SCSP got from the Sessions SENDER (seen in the answers it was sent)."""


class BenchCpo(CpoBackend):
    """The CPO one SCSP talks to; its cars' limits are the profiles this SCSP sent."""

    def __init__(
        self,
        site: Site,
        clock: SimClock,
        *,
        country_code: str,
        party_id: str,
        public_url: str,
        mode: str = "push",
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}: push or pull")
        super().__init__(
            site,
            clock,
            SimulatorState(),
            country_code=country_code,
            party_id=party_id,
            public_url=public_url,
            business_name="SCSP bench CPO",
        )
        self.mode = mode
        self.ledger = Ledger()
        self.in_force: dict[str, list[ReceivedProfile]] = {}
        self._place = {
            c.id: (cp.id, n) for cp in site.charge_points for n, c in enumerate(cp.connectors, start=1)
        }
        self._next_tx = 1
        self._tx: dict[str, int] = {}
        self._meter_wh: dict[str, float] = {}
        self._preferences_due: dict[str, LoggedSession] = {}
        self._last_push: dict[str, asyncio.Task[None]] = {}
        self._pushes: set[asyncio.Task[None]] = set()

    # ---- pushes, or what a pulling SCSP finds -----------------------------------------------

    def enqueue(self, what: str, push: Callable[[], Awaitable[None]]) -> None:
        """A push, after the ones before it of the same object and beside the others'.

        The simulator's one FIFO sent a boundary's dozen Session PATCHes one round trip after
        the other, and at 600x every real 40 ms an SCSP took over one was 24 simulated seconds:
        the last meter values of a boundary, and a departure queued behind them, reached the
        EMS 5 to 20 simulated minutes late, so its plans were made on data the replay's
        planner has at the boundary. OCPI orders the pushes of one object (a Session's PUT
        before its PATCHes), not those of different objects."""
        if self.mode == "pull" and what.startswith("session "):
            return  # pulled from the Sessions SENDER instead (preferences: `send_due_preferences`)
        self._enqueue_in_order(what, push)

    def _enqueue_in_order(self, what: str, push: Callable[[], Awaitable[None]]) -> None:
        if not self.registered:
            return
        key = " ".join(what.split()[:2])  # the simulator names each push "KIND ID ACTION"
        previous = self._last_push.get(key)
        task = asyncio.get_running_loop().create_task(self._push_after(previous, what, push))
        self._last_push[key] = task
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    async def _push_after(
        self, previous: asyncio.Task[None] | None, what: str, push: Callable[[], Awaitable[None]]
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await self.push_now(what, push)

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait until every push went out (used before stopping)."""
        if self._pushes:
            await asyncio.wait(set(self._pushes), timeout=timeout_s)
        await super().drain(timeout_s)

    def send_due_preferences(self) -> None:
        """Pulling: the preferences of sessions the SCSP has now pulled (OCPI cannot pull them)."""
        for session_id in [sid for sid in self._preferences_due if sid in self.ledger.pulled]:
            log = self._preferences_due.pop(session_id)
            s = self.sessions.get(session_id)
            if s is not None and s.status == "ACTIVE":
                self._enqueue_in_order(f"session {s.id} charging_preferences", self._put_preferences(s, log))

    # ---- the cars, as a central system reports them -----------------------------------------

    def car_arrived(self, log: LoggedSession, connector_id: str, at: datetime) -> None:
        """A car plugged in at `log.arrival`; the bench learns it (and pushes it) at `at`."""
        cp_id, number = self._place[connector_id]
        self.expect(cp_id, number, log)
        tx = self._next_tx
        self._next_tx += 1
        self._tx[log.session_id] = tx
        self._meter_wh[log.session_id] = 0.0
        self.transaction_started(cp_id, number, tx, log.token_uid, 0, format_ocpp_time(log.arrival))
        # The car draws from this boundary on (the replay's step grid): its first charging period
        # starts here, so its mean power is not diluted by the minutes before it could draw.
        self.sessions[log.session_id].last_sample_at = max(at, log.arrival)
        self.ledger.pushed_at[log.session_id] = at
        self.ledger.real_pushed_at_s[log.session_id] = time.monotonic()
        if self.mode == "pull" and (log.declared_departure or log.declared_energy_kwh is not None):
            self._preferences_due[log.session_id] = log

    def car_metered(
        self,
        session_id: str,
        connector_id: str,
        at: datetime,
        energy_kwh: float,
        phase_current_a: dict[str, float],
    ) -> None:
        """A meter sample at `at`: the energy register and the current per grid phase."""
        cp_id, number = self._place[connector_id]
        wh = energy_kwh * 1000.0
        power_w = 0.0
        values: list[dict[str, Any]] = [
            {"measurand": "Energy.Active.Import.Register", "unit": "Wh", "value": f"{wh:.3f}"}
        ]
        for phase, current_a in phase_current_a.items():
            values.append(
                {"measurand": "Current.Import", "phase": phase, "unit": "A", "value": f"{current_a:.3f}"}
            )
            power_w += current_a * self.site.phase_voltage_v
        values.append({"measurand": "Power.Active.Import", "unit": "W", "value": f"{power_w:.1f}"})
        self._meter_wh[session_id] = wh
        self.meter_values(
            cp_id,
            number,
            self._tx[session_id],
            [{"timestamp": format_ocpp_time(at), "sampled_value": values}],
        )

    def car_left(self, session_id: str, departure: datetime, energy_kwh: float) -> None:
        self._preferences_due.pop(session_id, None)
        if session_id not in self._tx:
            return  # never plugged in on the step grid
        self.transaction_stopped(
            self._tx[session_id], round(energy_kwh * 1000.0), format_ocpp_time(departure), "EVDisconnected"
        )

    def cancel_tasks(self) -> None:
        """Stop the result callbacks and pushes still in flight (the bench is over)."""
        for task in [*self._tasks, *self._pushes]:
            task.cancel()

    # ---- chargingprofiles Receiver ----------------------------------------------------------

    def profile_in_force(self, session_id: str, at: datetime) -> dict[str, Any] | None:
        """The last profile of the session that reached the bench at or before `at`."""
        received = self.profiles_in_force(session_id, at)
        return received[-1].profile if received else None

    def profiles_in_force(self, session_id: str, at: datetime) -> list[ReceivedProfile]:
        """The profiles of the session that reached the bench at or before `at` since it was
        last cleared, in the order they came (`limit_over_kw` reads them)."""
        chosen: list[ReceivedProfile] = []
        for received in self.in_force.get(session_id, ()):
            if received.at > at:
                break
            chosen = [*chosen, received] if received.profile is not None else []
        return chosen

    def _record(self, session_id: str, profile: dict[str, Any] | None) -> None:
        received = ReceivedProfile(session_id, self.clock.now(), time.monotonic(), profile)
        self.in_force.setdefault(session_id, []).append(received)
        if profile is not None:
            self.ledger.accepted.append(received)

    def set_profile(self, session_id: str, profile: ChargingProfile, response_url: str) -> dict[str, Any]:
        s = self.ongoing(session_id)
        if s is None:
            self.ledger.unknown_session_puts += 1
            return {"result": "UNKNOWN_SESSION", "timeout": 0}
        self._record(session_id, absolute_profile(profile, s.start))
        s.ems_profile = True
        self.spawn(self._post_result(response_url, {"result": "ACCEPTED"}, "ChargingProfileResult"))
        return {"result": "ACCEPTED", "timeout": PROFILE_RESULT_TIMEOUT_S}

    def get_profile(self, session_id: str, duration_s: int, response_url: str) -> dict[str, Any]:
        s = self.ongoing(session_id)
        if s is None:
            return {"result": "UNKNOWN_SESSION", "timeout": 0}
        profile = self.profile_in_force(session_id, self.clock.now())
        body: dict[str, Any] = {"result": "REJECTED"}
        if profile is not None:
            now = format_ocpi_datetime(self.clock.now())
            body = {"result": "ACCEPTED", "profile": {"start_date_time": now, "charging_profile": profile}}
        self.spawn(self._post_result(response_url, body, "ActiveChargingProfileResult"))
        return {"result": "ACCEPTED", "timeout": PROFILE_RESULT_TIMEOUT_S}

    def clear_profile(self, session_id: str, response_url: str) -> dict[str, Any]:
        s = self.ongoing(session_id)
        if s is None:
            return {"result": "UNKNOWN_SESSION", "timeout": 0}
        self._record(session_id, None)
        self.spawn(self._post_result(response_url, {"result": "ACCEPTED"}, "ClearProfileResult"))
        return {"result": "ACCEPTED", "timeout": PROFILE_RESULT_TIMEOUT_S}


def limit_over_kw(
    car: Car,
    received: Sequence[ReceivedProfile],
    t0: datetime,
    t1: datetime,
    voltage_v: float,
    response_window_s: float,
) -> float:
    """Mean power the car may draw over [t0, t1) under the profiles that reached the bench by
    then (`profiles_in_force`), in the order they came: each from its own start, but from no
    earlier than `response_window_s` before it came, until a later one's. Before the first of
    them, if it came within `response_window_s` of t0, its own limits from t0 on (the SCSP
    answered the step's events in time, as the replay's planner does at the step); else
    nothing but the car's own maximum.

    A profile starting minutes into the step does not undo the one before it over those
    minutes: the car drew under the old limit until the new one began, as a charge point does
    and as the SCSP judges the meter values it is sent. Read from the step's start, a plan made
    at 10:35 that cut a car to 0 had it draw nothing from 10:30, where its old profile let it
    draw 16 A: the EMS, seeing 0 kW under 16 A, took the car for full (the office's June day:
    one left with 4.1 of 8.4 kWh). Nor does a profile that came after the window wait for the
    next step: it holds from its start, as the SCSP that sent it takes it to."""
    if not received:
        return allowed_kw(car, None, t0, t1, voltage_v)
    window = timedelta(seconds=response_window_s)
    effective = []
    for r in received:
        assert r.profile is not None  # `profiles_in_force` leaves out what a DELETE undid
        effective.append(max(parse_ocpi_datetime(r.profile["start_date_time"]), r.at - window))
    first = min(range(len(received)), key=lambda i: effective[i])
    if effective[first] > t0 and received[first].at <= t0 + window:
        effective[first] = t0
    cuts = sorted({t0, t1, *(e for e in effective if t0 < e < t1)})
    weighted = 0.0
    for a, b in itertools.pairwise(cuts):
        holders = [i for i, e in enumerate(effective) if e <= a]
        profile = received[max(holders)].profile if holders else None
        weighted += allowed_kw(car, profile, a, b, voltage_v) * (b - a).total_seconds()
    return weighted / (t1 - t0).total_seconds()


UNLIMITED = 1e9
"""The limit after a profile's `duration`: none (the car's own maximum then binds)."""


def absolute_profile(profile: ChargingProfile, session_start: datetime) -> dict[str, Any]:
    """The profile as OCPI JSON on an absolute start (a relative one starts with the session), its
    `duration` ended by an unlimited period: what `ems.replay.cars.draw_step` reads."""
    start = profile.start_date_time or session_start
    periods = [
        {"start_period": p.start_period, "limit": p.limit} for p in profile.charging_profile_period or []
    ]
    if profile.duration is not None and (not periods or profile.duration > periods[-1]["start_period"]):
        periods.append({"start_period": profile.duration, "limit": UNLIMITED})
    return {
        "start_date_time": format_ocpi_datetime(start),
        "charging_rate_unit": str(profile.charging_rate_unit),
        "charging_profile_period": periods,
    }
