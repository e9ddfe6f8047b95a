"""OCPP 1.6 smart charging as a charge point computes it, and what a vehicle then draws.

Pure functions over stored profiles: no I/O, no clock of their own (`now` is passed in), so the
charge points, the tests and the composite schedule all use the same arithmetic.

Rules followed (OCPP 1.6 §3.13): within one purpose the highest `stackLevel` in force wins; a
TxProfile overrides TxDefaultProfile for its transaction; ChargePointMaxProfile caps the whole
charge point. A period is in force from its `startPeriod` to the next one's; a profile is in
force from its start (`startSchedule` for Absolute/Recurring, the transaction start for
Relative) for `duration` seconds (for ever when absent), within `validFrom`/`validTo`.
Unit `A` is a per-phase current: power = limit × phase voltage × phases drawn (capped by the
period's `numberPhases`); unit `W` is the total power.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

TX_PROFILE = "TxProfile"
TX_DEFAULT_PROFILE = "TxDefaultProfile"
CHARGE_POINT_MAX_PROFILE = "ChargePointMaxProfile"
PURPOSES = (CHARGE_POINT_MAX_PROFILE, TX_DEFAULT_PROFILE, TX_PROFILE)

_RECURRENCE_S = {"Daily": 86_400, "Weekly": 7 * 86_400}


def parse_ocpp_time(text: str) -> datetime:
    """OCPP dateTime (RFC 3339; `Z` or an offset) as an aware datetime."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"OCPP time {text!r} has no time zone")
    return value


def format_ocpp_time(moment: datetime) -> str:
    """UTC with `Z` and milliseconds: what charge points commonly send."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _number(value: Any) -> float:
    """The ocpp package hands SetChargingProfile numbers over as `Decimal` (it validates
    `multipleOf: 0.1` with Decimal parsing): normalise to float."""
    if isinstance(value, Decimal | int | float):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


@dataclass(frozen=True)
class SchedulePeriod:
    start_period_s: int
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True)
class StoredProfile:
    """A charging profile as a charge point keeps it (OCPP 1.6 ChargingProfile)."""

    profile_id: int
    stack_level: int
    purpose: str
    kind: str
    unit: str
    periods: tuple[SchedulePeriod, ...]
    start_schedule: datetime | None = None
    duration_s: int | None = None
    min_charging_rate: float | None = None
    transaction_id: int | None = None
    recurrency_kind: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None

    @classmethod
    def from_ocpp(cls, profile: Mapping[str, Any]) -> StoredProfile:
        """From the snake_case dict the `ocpp` package passes to a SetChargingProfile handler."""
        schedule = profile["charging_schedule"]
        periods = tuple(
            SchedulePeriod(
                int(p["start_period"]),
                _number(p["limit"]),
                int(p["number_phases"]) if p.get("number_phases") is not None else None,
            )
            for p in schedule["charging_schedule_period"]
        )
        if not periods:
            raise ValueError("chargingSchedulePeriod is empty")
        if periods[0].start_period_s != 0 or any(
            b.start_period_s <= a.start_period_s for a, b in itertools.pairwise(periods)
        ):
            raise ValueError("chargingSchedulePeriod must start at 0 and increase")

        def optional_time(key: str, where: Mapping[str, Any]) -> datetime | None:
            return parse_ocpp_time(where[key]) if where.get(key) else None

        stored = cls(
            profile_id=int(profile["charging_profile_id"]),
            stack_level=int(profile["stack_level"]),
            purpose=str(profile["charging_profile_purpose"]),
            kind=str(profile["charging_profile_kind"]),
            unit=str(schedule["charging_rate_unit"]),
            periods=periods,
            start_schedule=optional_time("start_schedule", schedule),
            duration_s=int(schedule["duration"]) if schedule.get("duration") is not None else None,
            min_charging_rate=_number(schedule["min_charging_rate"])
            if schedule.get("min_charging_rate") is not None
            else None,
            transaction_id=int(profile["transaction_id"]) if profile.get("transaction_id") else None,
            recurrency_kind=profile.get("recurrency_kind"),
            valid_from=optional_time("valid_from", profile),
            valid_to=optional_time("valid_to", profile),
        )
        if stored.kind in ("Absolute", "Recurring") and stored.start_schedule is None:
            raise ValueError(f"a {stored.kind} profile needs chargingSchedule.startSchedule")
        if stored.kind == "Recurring" and stored.recurrency_kind not in _RECURRENCE_S:
            raise ValueError("a Recurring profile needs recurrencyKind Daily or Weekly")
        return stored

    def start(self, transaction_start: datetime | None) -> datetime | None:
        """Where `startPeriod` 0 is: the transaction start for Relative profiles."""
        if self.kind == "Relative":
            return transaction_start
        return self.start_schedule

    def period_at(self, now: datetime, transaction_start: datetime | None) -> SchedulePeriod | None:
        """The period in force at `now`, or None when the profile is not in force."""
        if (self.valid_from and now < self.valid_from) or (self.valid_to and now >= self.valid_to):
            return None
        start = self.start(transaction_start)
        if start is None:
            return None
        elapsed_s = (now - start).total_seconds()
        if self.kind == "Recurring" and self.recurrency_kind in _RECURRENCE_S:
            elapsed_s %= _RECURRENCE_S[self.recurrency_kind]
        if elapsed_s < 0 or (self.duration_s is not None and elapsed_s >= self.duration_s):
            return None
        current = None
        for period in self.periods:
            if period.start_period_s <= elapsed_s:
                current = period
        return current

    def boundaries(
        self, transaction_start: datetime | None, after: datetime, until: datetime
    ) -> set[datetime]:
        """Instants in (after, until] at which this profile's limit may change."""
        start = self.start(transaction_start)
        if start is None:
            return set()
        offsets = [p.start_period_s for p in self.periods]
        if self.duration_s is not None:
            offsets.append(self.duration_s)
        moments: set[datetime] = set()
        if self.kind == "Recurring" and self.recurrency_kind in _RECURRENCE_S:
            cycle = _RECURRENCE_S[self.recurrency_kind]
            first = math.floor((after - start).total_seconds() / cycle)
            for k in range(first, first + 2 + int((until - after).total_seconds() // cycle)):
                moments |= {start + timedelta(seconds=k * cycle + o) for o in offsets}
        else:
            moments = {start + timedelta(seconds=o) for o in offsets}
        moments |= {m for m in (self.valid_from, self.valid_to) if m is not None}
        return {m for m in moments if after < m <= until}


@dataclass(frozen=True)
class Wiring:
    """What the limit arithmetic needs to know about a connector and the vehicle on it."""

    phase_voltage_v: float
    connector_phases: int
    """Phases wired to the connector (1 or 3)."""
    max_current_a: float
    min_current_a: float = 6.0
    dc: bool = False

    def phases_drawn(self, vehicle_phases: int | None) -> int:
        """A single-phase vehicle on a three-phase AC connector draws on one phase only."""
        if self.dc or vehicle_phases is None:
            return self.connector_phases
        return min(self.connector_phases, vehicle_phases)


def period_limit_w(period: SchedulePeriod, unit: str, wiring: Wiring, phases_drawn: int) -> float:
    """A period's limit as total watts for a vehicle drawing on `phases_drawn` phases."""
    if unit == "W":
        return period.limit
    phases = min(phases_drawn, period.number_phases) if period.number_phases else phases_drawn
    return period.limit * wiring.phase_voltage_v * phases


def composite_limit_w(
    profiles_by_purpose: Mapping[str, Iterable[StoredProfile]],
    now: datetime,
    transaction_start: datetime | None,
    transaction_id: int | None,
    wiring: Wiring,
    phases_drawn: int,
) -> float | None:
    """The lowest of the ChargePointMax limit and the Tx (else TxDefault) limit, in W; None if none.

    Within a purpose the profile with the highest stack level that is in force wins, lower
    levels showing through where it is not in force.
    """

    def winner(purpose: str) -> float | None:
        candidates = sorted(profiles_by_purpose.get(purpose, ()), key=lambda p: -p.stack_level)
        for profile in candidates:
            if purpose == TX_PROFILE and profile.transaction_id not in (None, transaction_id):
                continue
            if purpose in (TX_PROFILE, TX_DEFAULT_PROFILE) and transaction_id is None:
                continue
            period = profile.period_at(now, transaction_start)
            if period is not None:
                return period_limit_w(period, profile.unit, wiring, phases_drawn)
        return None

    tx = winner(TX_PROFILE)
    if tx is None:
        tx = winner(TX_DEFAULT_PROFILE)
    cap = winner(CHARGE_POINT_MAX_PROFILE)
    values = [v for v in (tx, cap) if v is not None]
    return min(values) if values else None


@dataclass(frozen=True)
class VehicleDemand:
    max_power_kw: float | None
    phases: int
    remaining_wh: float


def draw_power_w(wiring: Wiring, vehicle: VehicleDemand, limit_w: float | None) -> float:
    """What the vehicle draws: min(vehicle max, connector max, limit), nothing once full.

    AC (IEC 61851): a current limit below the connector's minimum (6 A) cannot be signalled to
    the car, which then pauses rather than draw less: 0 W.
    """
    if vehicle.remaining_wh <= 0:
        return 0.0
    phases = wiring.phases_drawn(vehicle.phases)
    power_w = wiring.max_current_a * wiring.phase_voltage_v * phases
    if vehicle.max_power_kw is not None:
        power_w = min(power_w, vehicle.max_power_kw * 1000.0)
    if limit_w is not None:
        power_w = min(power_w, max(0.0, limit_w))
        if not wiring.dc and limit_w / (wiring.phase_voltage_v * phases) < wiring.min_current_a - 1e-9:
            return 0.0
    return power_w


def offered_current_a(wiring: Wiring, limit_w: float | None, phases_drawn: int) -> float:
    """The per-phase current the charge point offers (OCPP measurand Current.Offered)."""
    if limit_w is None:
        return wiring.max_current_a
    return min(wiring.max_current_a, limit_w / (wiring.phase_voltage_v * phases_drawn))


def floor_one_decimal(value: float) -> float:
    """OCPP and OCPI limits carry at most one decimal; rounding down never raises a limit."""
    return math.floor(value * 10 + 1e-9) / 10
