"""Replay KPIs (formats §6), computed from what the replay measured, step by step.

Every figure is over the whole replayed span and uses the actual series (not the forecasts
the planner saw). Ratios whose denominator is zero (no PV, no EV energy) are `None`: there is
nothing to share, and 0 would read as a bad result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from grid_models.electrical import check
from grid_models.site import Site

FloatArray = npt.NDArray[np.float64]
TOLERANCE_A = 0.1

KPI_KEYS = (
    "n_sessions",
    "energy_requested_kwh",
    "energy_delivered_kwh",
    "unmet_kwh",
    "pv_energy_kwh",
    "pv_self_consumption_ratio",
    "ev_pv_share_ratio",
    "grid_import_kwh",
    "grid_peak_kw",
    "cost_eur",
    "protection_violations",
    "max_protection_loading_ratio",
    "n_reoptimizations",
    "reopt_ms_p50",
    "reopt_ms_p95",
    "wall_s",
    "sessions_zero_energy",
    "delivered_ratio_jain",
    "setpoint_changes_per_session_hour",
)
ZERO_ENERGY_KWH = 0.05
"""A session that got less than this while asking more got nothing (`sessions_zero_energy`).
The planner learns no energy from such a session: `ems.planning.needs.GOT_NOTHING_KWH`."""


def protection_currents(
    site: Site,
    connector_power_kw: Mapping[tuple[str, int], FloatArray],
    pv_kw: FloatArray,
    base_load_kw: FloatArray,
) -> tuple[tuple[tuple[str, str], ...], FloatArray, FloatArray]:
    """(rows (protection, phase), net currents [row, step] in A, ratings per row).

    `connector_power_kw[(connector id, vehicle phases)]`: different cars on one connector may
    draw on one or three phases, so the power is split by vehicle phases and the two checks
    (currents are linear) added; PV and base load count once.
    """
    n = len(pv_kw)
    three = {cid: p.tolist() for (cid, ph), p in connector_power_kw.items() if ph == 3}
    one = {cid: p.tolist() for (cid, ph), p in connector_power_kw.items() if ph == 1}
    report3 = check(
        site, three, dict.fromkeys(three, 3), pv_kw.tolist(), base_load_kw.tolist(), tolerance_a=TOLERANCE_A
    )
    currents = report3.currents_a.copy()
    if one:
        zeros = [0.0] * n
        report1 = check(site, one, dict.fromkeys(one, 1), zeros, zeros, tolerance_a=TOLERANCE_A)
        currents = currents + report1.currents_a
    rows = tuple((pid, str(phase)) for pid, phase in report3.rows)
    return rows, currents, report3.rated_current_a


def overloaded(currents_a: FloatArray, rated_a: FloatArray) -> npt.NDArray[np.bool_]:
    """[row, step]: where `|net current|` exceeds the row's rating by more than the tolerance,
    in either direction (formats §6 `protection_violations`)."""
    return np.asarray(np.abs(currents_a) > rated_a[:, None] + TOLERANCE_A)


def protection_violations_by_phase(
    site: Site,
    connector_power_kw: Mapping[tuple[str, int], FloatArray],
    pv_kw: FloatArray,
    base_load_kw: FloatArray,
) -> dict[tuple[str, str], int]:
    """`protection_violations` split by (protection, phase): which breaker trips on which phase."""
    rows, currents, rated = protection_currents(site, connector_power_kw, pv_kw, base_load_kw)
    over = overloaded(currents, rated)
    return {row: int(over[r].sum()) for r, row in enumerate(rows)}


def percentile(values: Sequence[float], q: float) -> float | None:
    return None if not values else float(np.percentile(np.asarray(values, dtype=float), q))


def compute_kpis(
    *,
    site: Site,
    step_s: int,
    pv_kw: FloatArray,
    base_load_kw: FloatArray,
    price_eur_per_kwh: FloatArray | None,
    ev_kw: FloatArray,
    connector_power_kw: Mapping[tuple[str, int], FloatArray],
    energy_requested_kwh: Sequence[float],
    energy_delivered_kwh: Sequence[float],
    plan_ms: Sequence[float],
    wall_s: float,
    setpoint_changes: int = 0,
    session_hours: float = 0.0,
) -> dict[str, Any]:
    """Every key of formats §6, from per-step series of the actual PV, base load and EV power.

    `setpoint_changes`: how many times a car's allowed power changed from one step to the next
    while it was plugged in, over all sessions; `session_hours` the hours they were plugged in.
    """
    dt_h = step_s / 3600.0
    grid = np.maximum(0.0, ev_kw + base_load_kw - pv_kw)
    pv_energy = float(pv_kw.sum() * dt_h)
    pv_used = float(np.minimum(pv_kw, ev_kw + base_load_kw).sum() * dt_h)
    ev_energy = float(ev_kw.sum() * dt_h)
    ev_from_pv = float(np.minimum(ev_kw, np.maximum(0.0, pv_kw - base_load_kw)).sum() * dt_h)
    _rows, currents, rated = protection_currents(site, connector_power_kw, pv_kw, base_load_kw)
    over = overloaded(currents, rated)
    loading = np.abs(currents) / rated[:, None] if currents.size else np.zeros((0, 0))
    requested = float(sum(energy_requested_kwh))
    delivered = float(sum(energy_delivered_kwh))
    return {
        "n_sessions": len(energy_requested_kwh),
        "energy_requested_kwh": requested,
        "energy_delivered_kwh": delivered,
        "unmet_kwh": requested - delivered,
        "pv_energy_kwh": pv_energy,
        "pv_self_consumption_ratio": pv_used / pv_energy if pv_energy > 0 else None,
        "ev_pv_share_ratio": ev_from_pv / ev_energy if ev_energy > 0 else None,
        "grid_import_kwh": float(grid.sum() * dt_h),
        "grid_peak_kw": float(grid.max()) if grid.size else 0.0,
        "cost_eur": None if price_eur_per_kwh is None else float((grid * price_eur_per_kwh).sum() * dt_h),
        "protection_violations": int(over.sum()),
        "max_protection_loading_ratio": float(loading.max()) if loading.size else 0.0,
        "n_reoptimizations": len(plan_ms),
        "reopt_ms_p50": percentile(plan_ms, 50),
        "reopt_ms_p95": percentile(plan_ms, 95),
        "wall_s": wall_s,
        "sessions_zero_energy": sum(
            1
            for asked, got in zip(energy_requested_kwh, energy_delivered_kwh, strict=True)
            if asked >= ZERO_ENERGY_KWH and got < ZERO_ENERGY_KWH
        ),
        "delivered_ratio_jain": jain_index(energy_requested_kwh, energy_delivered_kwh),
        "setpoint_changes_per_session_hour": setpoint_changes / session_hours if session_hours > 0 else None,
    }


def jain_index(requested_kwh: Sequence[float], delivered_kwh: Sequence[float]) -> float | None:
    """Jain's fairness index of delivered / requested over the sessions that asked for energy:
    1 when every driver got the same share, 1/n when one got everything; None when nobody got
    anything (no share to compare)."""
    shares = np.array(
        [min(1.0, got / asked) for asked, got in zip(requested_kwh, delivered_kwh, strict=True) if asked > 0],
        dtype=float,
    )
    squares = float((shares**2).sum())
    return float(shares.sum() ** 2 / (shares.size * squares)) if squares > 0 else None
