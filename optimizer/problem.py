"""The optimizer's snapshot interface: a frozen `Problem` in, a frozen `Plan` out.

The planner, the replay, the baselines and `ems optimize` all hand the optimizer the same
value (acnportal habit: schedulers see only frozen snapshots), so a plan can be recomputed
from what was logged. Series are already aligned on the planning steps: `ems.sites.series.resample`
turns a series file into step averages.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from grid_models.site import Connector, Site

ObjectiveName = Literal["self_consumption", "cost", "peak"]
OBJECTIVES: tuple[ObjectiveName, ...] = ("self_consumption", "cost", "peak")

Status = Literal["optimal", "feasible", "fallback"]
Method = Literal[
    "lp",
    "mip",
    "lp_heuristic",
    "fallback",
    "uncontrolled",
    "uncontrolled_capped",
    "equal_share",
    "pv_surplus",
    "fcfs",
    "edf",
    "llf",
    "perfect_foresight",
]


class ProblemError(ValueError):
    """A problem refused before any solve: names the session or field that is wrong."""


@dataclass(frozen=True)
class Session:
    """One plugged-in (or, for perfect foresight, announced) charging session.

    `connector_id` is the site's `Connector.id`. `max_power_kw=None` means the connector's
    limit, `min_current_a=None` the connector's minimum. `priority` weighs this session's unmet
    energy (higher: served first). `arrival=None` means already plugged in; the charging window
    is the steps that start at or after arrival and end at or before departure.

    `energy_extra_kwh`: what the car may take beyond its need when the need is an estimate (up
    to what its battery can still hold). It is never owed: it is planned only from PV that no
    need takes — valued in the objective stage at half to 0.9 of the cheapest grid energy of the
    horizon, more for a car leaving sooner (`extra_values_per_kwh`), so importing for it, or
    moving PV from a need to it, never pays.
    """

    session_id: str
    connector_id: str
    energy_needed_kwh: float
    departure: datetime
    vehicle_phases: int = 3
    max_power_kw: float | None = None
    min_current_a: float | None = None
    priority: float = 1.0
    arrival: datetime | None = None
    energy_extra_kwh: float = 0.0


@dataclass(frozen=True)
class SolveOptions:
    """How to solve: the minimum-current rule, sizes and time limits, tolerances.

    `mip_max_binaries`: above this many on/off decisions the LP-rounding heuristic is used
    instead of the exact MIP. `mip_horizon_s`: the MIP decides on/off over the plan's first
    this many seconds only (None: all of it); later steps are rounded, as a plan that is
    re-planned before they come (the EMS's) can afford. `stage_rel_tol`/`stage_abs_tol`: how
    much a fixed earlier stage optimum may be relaxed in later stages (lexicographic priorities).
    """

    min_current: bool = True
    horizon_cap_s: int = 36 * 3600
    mip_max_binaries: int = 1000
    mip_horizon_s: int | None = None
    time_limit_s: float = 10.0
    mip_rel_gap: float = 1e-4
    stage_rel_tol: float = 1e-9
    stage_abs_tol: float = 1e-9
    tie_breaks: bool = True
    tie_break_iteration_ratio: float = 0.25
    """Simplex iterations the tie-break stages may use, relative to stages 1–2 (deterministic)."""
    tie_break_min_iterations: int = 1000
    """... and at least this many (a warm re-plan's stages 1–2 take only a few iterations: this
    floor is then the budget, and the earliness stage usually spends it)."""
    threads: int = 1
    least_changes: bool = True
    """Least set-point changes among equal plans (`optimizer.smooth`): without the minimum-current
    rule, power moved between cars after the stages, every stage value unchanged; under it, the
    on/off pattern rounded from the relaxation so smoothed, where that is no worse in stages
    1–4 (`optimizer.rounding._round_smoothly`). Only with `tie_breaks`."""


@dataclass(frozen=True)
class Problem:
    """Everything one plan depends on.

    `pv_kw`, `base_load_kw`, `price_eur_per_kwh` hold one mean value per step from `now`
    (shorter series: PV and base load 0, price its last value past the end; `price=None` means
    no price). `objective` is a name or weights over several, e.g. `{"cost": 1, "peak": 0.1}`.
    """

    site: Site
    now: datetime
    sessions: tuple[Session, ...]
    step_s: int = 900
    pv_kw: tuple[float, ...] = ()
    base_load_kw: tuple[float, ...] = ()
    price_eur_per_kwh: tuple[float, ...] | None = None
    objective: ObjectiveName | Mapping[str, float] = "self_consumption"
    options: SolveOptions = field(default_factory=SolveOptions)

    # ---- derived quantities used by every method ---------------------------------------
    def n_steps(self) -> int:
        """Steps from `now` to the latest departure (whole steps), capped; at least 1."""
        if not self.sessions:
            return 1
        last = max(s.departure for s in self.sessions)
        n = math.floor((last - self.now).total_seconds() / self.step_s + 1e-9)
        cap = max(1, self.options.horizon_cap_s // self.step_s)
        return max(1, min(n, cap))

    def steps(self) -> tuple[datetime, ...]:
        return tuple(self.now + timedelta(seconds=k * self.step_s) for k in range(self.n_steps()))

    def objective_weights(self) -> dict[ObjectiveName, float]:
        """Weights of the second stage; `cost` without a price becomes `self_consumption`."""
        raw: Mapping[str, float] = (
            {self.objective: 1.0} if isinstance(self.objective, str) else dict(self.objective)
        )
        out: dict[ObjectiveName, float] = {}
        for name, w in raw.items():
            if name not in OBJECTIVES:
                raise ProblemError(f"unknown objective {name!r} (expected one of {', '.join(OBJECTIVES)})")
            key: ObjectiveName = name
            if key == "cost" and self.price_eur_per_kwh is None:
                key = "self_consumption"
            out[key] = out.get(key, 0.0) + float(w)
        return out


EXTRA_VALUE_RATIO = 0.5
"""Extra energy is worth this share of the cheapest grid kWh: less than any import costs."""
EXTRA_URGENCY_RATIO = 0.4
"""... and up to this share more for a car whose window ends sooner (`extra_values_per_kwh`)."""


def extra_value_per_kwh(weights: Mapping[str, float], price: Sequence[float] | None) -> float:
    """What a kWh of extra energy is worth in the objective stage: half of the least that a kWh
    of import costs there over `price` (the horizon's prices). An objective that puts no price
    on imported energy (`peak`), or a price at or below zero, leaves extra energy unvalued: it
    could not tell PV from the grid."""
    prices = [float(v) for v in price] if price is not None else []
    per_kwh = [0.0] * max(1, len(prices))
    for name, w in weights.items():
        if name == "self_consumption":
            per_kwh = [v + w for v in per_kwh]
        elif name == "cost" and prices:
            per_kwh = [v + w * p for v, p in zip(per_kwh, prices, strict=True)]
    cheapest = min(per_kwh)
    return EXTRA_VALUE_RATIO * cheapest if cheapest > 0 else 0.0


def extra_values_per_kwh(
    weights: Mapping[str, float], price: Sequence[float] | None, window_ends: Sequence[int], n_steps: int
) -> list[float]:
    """Each session's value of a kWh of extra energy (`extra_value_per_kwh`), more for a car
    whose window ends sooner: when PV surplus is short, the car with fewer PV hours left gets it
    first, and the later car still has the afternoon. Still under the cheapest import kWh."""
    base = extra_value_per_kwh(weights, price)
    if base == 0.0:
        return [0.0] * len(window_ends)
    span = max(1, n_steps)
    urgency = EXTRA_URGENCY_RATIO / EXTRA_VALUE_RATIO
    return [base * (1.0 + urgency * (1.0 - min(max(end, 0), span) / span)) for end in window_ends]


def aligned(values: tuple[float, ...] | None, n_steps: int, hold_last: bool) -> list[float]:
    """`values` cut or padded to `n_steps` (pad: last value if `hold_last`, else 0)."""
    vals = list(values or ())
    if len(vals) >= n_steps:
        return [float(v) for v in vals[:n_steps]]
    pad = vals[-1] if (hold_last and vals) else 0.0
    return [float(v) for v in vals] + [float(pad)] * (n_steps - len(vals))


def connectors_by_id(site: Site) -> dict[str, Connector]:
    return {c.id: c for c in site.connectors()}


def validate_problem(problem: Problem) -> None:
    """Refuse what no plan can mean (formats §7): two sessions on one connector, a negative
    need, an unknown connector, bad phases, a naive datetime."""
    conns = connectors_by_id(problem.site)
    if problem.step_s <= 0:
        raise ProblemError(f"step must be positive, got {problem.step_s} s")
    if problem.now.tzinfo is None:
        raise ProblemError("now must carry a UTC offset")
    seen_conn: dict[str, str] = {}
    seen_id: set[str] = set()
    for s in problem.sessions:
        if s.session_id in seen_id:
            raise ProblemError(f"session {s.session_id!r} is listed twice")
        seen_id.add(s.session_id)
        if s.connector_id not in conns:
            raise ProblemError(f"session {s.session_id!r}: unknown connector {s.connector_id!r}")
        if s.connector_id in seen_conn:
            raise ProblemError(
                f"sessions {seen_conn[s.connector_id]!r} and {s.session_id!r} are both on connector "
                f"{s.connector_id!r}"
            )
        seen_conn[s.connector_id] = s.session_id
        c = conns[s.connector_id]
        if len(set(c.phases)) != len(c.phases):
            raise ProblemError(f"connector {c.id!r} has a repeated phase {list(c.phases)}")
        if not math.isfinite(s.energy_needed_kwh) or s.energy_needed_kwh < 0:
            raise ProblemError(f"session {s.session_id!r}: negative energy need {s.energy_needed_kwh}")
        if not math.isfinite(s.energy_extra_kwh) or s.energy_extra_kwh < 0:
            raise ProblemError(f"session {s.session_id!r}: negative extra energy {s.energy_extra_kwh}")
        if s.vehicle_phases not in (1, 3):
            raise ProblemError(f"session {s.session_id!r}: vehicle_phases must be 1 or 3")
        if s.max_power_kw is not None and (not math.isfinite(s.max_power_kw) or s.max_power_kw < 0):
            raise ProblemError(f"session {s.session_id!r}: negative max_power_kw {s.max_power_kw}")
        if s.priority <= 0 or not math.isfinite(s.priority):
            raise ProblemError(f"session {s.session_id!r}: priority must be positive")
        if s.departure.tzinfo is None or (s.arrival is not None and s.arrival.tzinfo is None):
            raise ProblemError(f"session {s.session_id!r}: times must carry a UTC offset")
    problem.objective_weights()


@dataclass(frozen=True)
class ChargingProfilePeriod:
    start_period: int
    """Seconds from `start_date_time`."""
    limit: float


@dataclass(frozen=True)
class ChargingProfile:
    """OCPI 2.2.1 ChargingProfile: the plan itself, limits rounded down to 0.1."""

    start_date_time: datetime
    charging_rate_unit: Literal["A", "W"]
    charging_profile_period: tuple[ChargingProfilePeriod, ...]

    def to_ocpi(self) -> dict[str, object]:
        return {
            "start_date_time": self.start_date_time.isoformat(),
            "charging_rate_unit": self.charging_rate_unit,
            "charging_profile_period": [
                {"start_period": p.start_period, "limit": p.limit} for p in self.charging_profile_period
            ],
        }


@dataclass(frozen=True)
class SessionPlan:
    session_id: str
    connector_id: str
    """The site's connector id."""
    evse_uid: str
    ocpi_connector_id: str
    vehicle_phases: int
    power_kw: tuple[float, ...]
    energy_needed_kwh: float
    energy_planned_kwh: float
    unmet_kwh: float
    charging_profile: ChargingProfile


@dataclass(frozen=True)
class Plan:
    """A plan for every session of a problem, with totals and how it was obtained."""

    status: Status
    method: Method
    objective: str
    step_s: int
    steps: tuple[datetime, ...]
    sessions: Mapping[str, SessionPlan]
    grid_import_kw: tuple[float, ...]
    pv_used_kw: tuple[float, ...]
    pv_kw: tuple[float, ...]
    base_load_kw: tuple[float, ...]
    price_eur_per_kwh: tuple[float, ...] | None
    grid_import_kwh: float
    unmet_kwh: float
    weighted_unmet_kwh: float
    cost_eur: float | None
    grid_peak_kw: float
    gap: float | None = None
    message: str | None = None
    build_ms: float = 0.0
    solve_ms: float = 0.0
    stage_values: tuple[float, ...] = ()
    """Optimal value of each lexicographic stage (unmet, objective, fairness, tie-break)."""
