"""What a replay is asked (`ReplayConfig`) and what it measured (`ReplayResult`).

Both ways of running a replay, the EMS-driven loop (`ems.replay.engine`) and the perfect-foresight
bound (`ems.replay.foresight`), take the one and build the other with `measured_result`; the KPIs and the
report read the result. Apart from the engine so that both runs and the report share them
without importing each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ems.planning.planner import PlannerSettings
from ems.replay.log import LoggedSession
from ems.sites.series import StepSeries
from grid_models.site import Site

FloatArray = npt.NDArray[np.float64]


class ReplayError(ValueError):
    """A replay that cannot run as asked (unknown connector, unknown strategy...)."""


@dataclass(frozen=True)
class ReplayConfig:
    """How to replay. `forecast_error` is the relative standard deviation of a multiplicative
    noise on the PV forecast the planner sees (0: perfect forecasts), drawn once per step from
    `seed` so re-plans see a consistent forecast."""

    strategy: str = "optimized"
    step_s: int = 900
    replan_s: int = 3600
    horizon_s: int = 36 * 3600
    min_current: bool = True
    mip_max_binaries: int | None = None
    mip_horizon_s: int | None = PlannerSettings.mip_horizon_s
    objective: str = "self_consumption"
    forecast_error: float = 0.0
    seed: int = 0


@dataclass
class ReplayResult:
    """Everything the replay measured; the KPIs and files are computed from it."""

    strategy: str
    site: Site
    step_s: int
    steps: tuple[datetime, ...]
    pv_kw: FloatArray
    base_load_kw: FloatArray
    price_eur_per_kwh: FloatArray | None
    sessions: tuple[LoggedSession, ...]
    session_connector: dict[str, str]
    power_kw: sp.csr_array
    """`power_kw[i, k]`: mean power of session i over step k. Sparse: a car draws only while
    plugged in, and a dense sessions x steps array took 0.87 GB for a year of the office."""
    plan_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    setpoint_changes: int = 0
    """Times a car's allowed power changed between consecutive steps it was plugged in."""

    def session_hours(self) -> float:
        """Hours the replayed cars were plugged in (`setpoint_changes_per_session_hour`)."""
        return sum((s.departure - s.arrival).total_seconds() for s in self.sessions) / 3600.0

    @property
    def ev_kw(self) -> FloatArray:
        return np.asarray(self.power_kw.sum(axis=0), dtype=float).reshape(len(self.steps))

    def delivered_kwh(self) -> FloatArray:
        total = np.asarray(self.power_kw.sum(axis=1), dtype=float).reshape(len(self.sessions))
        return total * (self.step_s / 3600.0)


def _power_matrix(power: dict[tuple[int, int], float], n_sessions: int, n_steps: int) -> sp.csr_array:
    """The power each session drew at each step, from what the replay recorded."""
    drawn = {key: p for key, p in power.items() if p != 0.0}
    rows = np.fromiter((i for i, _ in drawn), dtype=np.int64, count=len(drawn))
    cols = np.fromiter((k for _, k in drawn), dtype=np.int64, count=len(drawn))
    data = np.fromiter(drawn.values(), dtype=float, count=len(drawn))
    return sp.csr_array((data, (rows, cols)), shape=(n_sessions, n_steps))


Progress = Callable[[int], None]


def measured_result(
    config: ReplayConfig,
    site: Site,
    start: datetime,
    n_steps: int,
    actual: StepSeries,
    sessions: Sequence[LoggedSession],
    placed: dict[str, str],
    power: dict[tuple[int, int], float],
    plan_ms: list[float],
    wall0: float,
    setpoint_changes: int = 0,
) -> ReplayResult:
    """What a replay measured, on the series that really happened over its `n_steps`."""
    step_s = actual.step_s
    return ReplayResult(
        strategy=config.strategy,
        site=site,
        step_s=step_s,
        steps=tuple(start + timedelta(seconds=k * step_s) for k in range(n_steps)),
        pv_kw=np.asarray(actual.pv_kw[:n_steps], dtype=float),
        base_load_kw=np.asarray(actual.base_load_kw[:n_steps], dtype=float),
        price_eur_per_kwh=None
        if actual.price_eur_per_kwh is None
        else np.asarray(actual.price_eur_per_kwh[:n_steps], dtype=float),
        sessions=tuple(sessions),
        session_connector=placed,
        power_kw=_power_matrix(power, len(sessions), n_steps),
        plan_ms=plan_ms,
        wall_s=time.perf_counter() - wall0,
        setpoint_changes=setpoint_changes,
    )
