"""Per-phase electrical derivation of a site (formats §7).

A kW-only view of a site hides the phase a single-phase car loads: six 7.4 kW cars on L1
behind a 40 A breaker look fine in kW and trip it in amps. So every limit here is a current
on one grid phase of one protection, written as a linear function of the session powers, the
site's PV series and its base-load series:

    I[protection, phase] = Σ_c a[c]·P_c + a_pv·pv_kw + a_base·base_load_kw,   |I| <= rating

Steps are mean powers at unity power factor and nominal phase voltage `V`, so amps per kW
are exact constants; `check` evaluates a whole plan with one matrix product.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from grid_models.site import PHASES, Connector, Phase, Site
from grid_models.validation import ensure_valid

FloatArray = npt.NDArray[np.float64]

GRID_TOLERANCE_KW = 1e-3
"""Slack on the grid-connection limit, for rounding in plans written to JSON."""


def _drawn_phases(connector: Connector, vehicle_phases: int) -> tuple[Phase, ...]:
    if vehicle_phases not in (1, 3):
        raise ValueError(f"vehicle_phases must be 1 or 3, got {vehicle_phases!r}")
    if connector.power_type == "DC" or len(connector.phases) == 1 or vehicle_phases == 3:
        return connector.phases
    return connector.phases[:1]


def connector_phase_a_per_kw(site: Site, connector: Connector, vehicle_phases: int) -> dict[Phase, float]:
    """Amps each grid phase carries per kW the session on `connector` draws.

    Single-phase connector: 1000/V on its phase. Three-phase connector: 1000/(3V) on each phase
    for a three-phase vehicle, 1000/V on the grid phase of connector phase 1 for a single-phase
    one. A DC connector is taken as a balanced load at unity power factor on all its wired
    phases whatever the vehicle, because the rectifier, not the car, draws from the grid.
    """
    drawn = _drawn_phases(connector, vehicle_phases)
    a_per_kw = 1000.0 / (len(drawn) * site.phase_voltage_v)
    return {p: a_per_kw for p in drawn}


def session_max_power_kw(
    site: Site, connector: Connector, vehicle_phases: int, max_power_kw: float | None = None
) -> float:
    """Most a session can draw: the vehicle's limit, the connector's current on the phases
    actually drawn, and the connector's own kW limit; `None` means no vehicle limit."""
    drawn = _drawn_phases(connector, vehicle_phases)
    limit_kw = connector.max_current_a * site.phase_voltage_v * len(drawn) / 1000.0
    if connector.max_power_kw is not None:
        limit_kw = min(limit_kw, connector.max_power_kw)
    if max_power_kw is not None:
        limit_kw = min(limit_kw, max_power_kw)
    return max(0.0, limit_kw)


@dataclass(frozen=True)
class Downstream:
    """Everything a protection carries: ids in file order, its own id first in `protections`."""

    protection_id: str
    protections: tuple[str, ...]
    charge_points: tuple[str, ...]
    connectors: tuple[str, ...]
    pv_plants: tuple[str, ...]
    loads: tuple[str, ...]


def ancestors(site: Site) -> dict[str, tuple[str, ...]]:
    """Each protection and the protections above it, itself first (cycles are cut)."""
    parent = {p.id: p.parent for p in site.protections}
    out: dict[str, tuple[str, ...]] = {}
    for pid in parent:
        chain: list[str] = []
        node: str | None = pid
        while node is not None and node in parent and node not in chain:
            chain.append(node)
            node = parent[node]
        out[pid] = tuple(chain)
    return out


def downstream(site: Site) -> dict[str, Downstream]:
    """For each protection, the protections, charge points, connectors, PV plants and loads it
    feeds, directly or through other protections. An invalid site raises `SiteValidationError`."""
    ensure_valid(site)
    above = ancestors(site)
    under: dict[str, dict[str, list[str]]] = {
        p.id: {"protections": [], "charge_points": [], "connectors": [], "pv_plants": [], "loads": []}
        for p in site.protections
    }

    def add(protection: str, kind: str, element_id: str) -> None:
        for pid in above.get(protection, ()):
            under[pid][kind].append(element_id)

    for p in site.protections:
        add(p.id, "protections", p.id)
    for cp in site.charge_points:
        add(cp.protection, "charge_points", cp.id)
        for c in cp.connectors:
            add(cp.protection, "connectors", c.id)
    for pv in site.pv_plants:
        add(pv.protection, "pv_plants", pv.id)
    for ld in site.loads:
        add(ld.protection, "loads", ld.id)
    out = {}
    for p in site.protections:
        u = under[p.id]
        # the protection itself comes first, then the rest in file order
        own = [p.id, *(x for x in u["protections"] if x != p.id)]
        out[p.id] = Downstream(
            protection_id=p.id,
            protections=tuple(own),
            charge_points=tuple(u["charge_points"]),
            connectors=tuple(u["connectors"]),
            pv_plants=tuple(u["pv_plants"]),
            loads=tuple(u["loads"]),
        )
    return out


@dataclass(frozen=True)
class PhaseLimit:
    """One linear limit: `-rated <= Σ a·P + pv_a_per_kw·pv_kw + base_load_a_per_kw·base_kw <= rated`."""

    protection_id: str
    phase: Phase
    rated_current_a: float
    connector_a_per_kw: Mapping[str, float]
    """Connector id -> A on this phase per kW drawn by the session on that connector."""
    pv_a_per_kw: float
    """A on this phase per kW of the site's PV series (<= 0: PV injects, split between plants by
    peak_power_kw, equally on 3 phases)."""
    base_load_a_per_kw: float
    """A on this phase per kW of the site's base-load series (on the first `loads` element,
    equally on its phases; 0 if there are no loads)."""


@dataclass(frozen=True)
class _Matrix:
    """All limits of a site as arrays: row `3·i + k` is protection `i`, phase `PHASES[k]`."""

    rows: tuple[tuple[str, Phase], ...]
    connector_ids: tuple[str, ...]
    a_per_kw: FloatArray  # (rows, connectors)
    pv_a_per_kw: FloatArray  # (rows,)
    base_load_a_per_kw: FloatArray  # (rows,)
    rated_current_a: FloatArray  # (rows,)


@dataclass(frozen=True)
class _SiteRows:
    """What of `_Matrix` depends on the site alone, for a single- and a three-phase vehicle on
    every connector: built once per site (sites are immutable), read-only."""

    rows: tuple[tuple[str, Phase], ...]
    connector_ids: tuple[str, ...]
    a_three_phase: FloatArray  # (rows, connectors)
    a_single_phase: FloatArray  # (rows, connectors)
    pv_a_per_kw: FloatArray
    base_load_a_per_kw: FloatArray
    rated_current_a: FloatArray


@functools.lru_cache(maxsize=16)
def _site_rows(site: Site) -> _SiteRows:
    ensure_valid(site)  # a wrong tree would give wrong limits silently
    above = ancestors(site)
    index = {p.id: i for i, p in enumerate(site.protections)}
    n_rows = 3 * len(site.protections)
    connectors = [(cp.protection, c) for cp in site.charge_points for c in cp.connectors]
    phase_index = {p: k for k, p in enumerate(PHASES)}
    by_vehicle: dict[int, FloatArray] = {}
    for vehicle_phases in (1, 3):
        a = np.zeros((n_rows, len(connectors)))
        for j, (protection, c) in enumerate(connectors):
            coef = connector_phase_a_per_kw(site, c, vehicle_phases)
            for pid in above.get(protection, ()):
                for phase, value in coef.items():
                    a[3 * index[pid] + phase_index[phase], j] += value
        by_vehicle[vehicle_phases] = a

    v = site.phase_voltage_v
    pv = np.zeros(n_rows)
    total_peak_kw = sum(plant.peak_power_kw for plant in site.pv_plants)
    for plant in site.pv_plants if total_peak_kw > 0 else ():
        share = plant.peak_power_kw / total_peak_kw
        for pid in above.get(plant.protection, ()):
            pv[3 * index[pid] : 3 * index[pid] + 3] -= share * 1000.0 / (3 * v)

    base = np.zeros(n_rows)
    if site.loads:
        load = site.loads[0]
        for pid in above.get(load.protection, ()):
            for phase in load.phases:
                base[3 * index[pid] + phase_index[phase]] += 1000.0 / (len(load.phases) * v)

    rated = np.repeat([float(p.rated_current_a) for p in site.protections], 3)
    for array in (*by_vehicle.values(), pv, base, rated):
        array.setflags(write=False)
    return _SiteRows(
        rows=tuple((p.id, ph) for p in site.protections for ph in PHASES),
        connector_ids=tuple(c.id for _, c in connectors),
        a_three_phase=by_vehicle[3],
        a_single_phase=by_vehicle[1],
        pv_a_per_kw=pv,
        base_load_a_per_kw=base,
        rated_current_a=rated,
    )


def _matrix(site: Site, vehicle_phases: Mapping[str, int] | None) -> _Matrix:
    """The site's limits for these vehicles: the per-site part is cached, only the columns of
    single-phase vehicles are chosen here (a plan's check ran ~8 ms of Python otherwise)."""
    site_rows = _site_rows(site)
    vehicle_phases = vehicle_phases or {}
    phases = [vehicle_phases.get(cid, 3) for cid in site_rows.connector_ids]
    wrong = next((p for p in phases if p not in (1, 3)), None)
    if wrong is not None:
        raise ValueError(f"vehicle_phases must be 1 or 3, got {wrong!r}")
    single = np.array(phases) == 1
    a = (
        np.where(single[None, :], site_rows.a_single_phase, site_rows.a_three_phase)
        if single.any()
        else site_rows.a_three_phase
    )
    return _Matrix(
        rows=site_rows.rows,
        connector_ids=site_rows.connector_ids,
        a_per_kw=a,
        pv_a_per_kw=site_rows.pv_a_per_kw,
        base_load_a_per_kw=site_rows.base_load_a_per_kw,
        rated_current_a=site_rows.rated_current_a,
    )


def constraints(site: Site, vehicle_phases: Mapping[str, int] | None = None) -> list[PhaseLimit]:
    """Every per-phase limit of the site: one per protection and grid phase (all three phases,
    even one carrying nothing, so the list has the same shape whatever vehicles are plugged),
    protections in file order, phases L1..L3. `vehicle_phases` maps connector id to 1 or 3;
    a connector not listed draws on all its phases. An invalid site raises `SiteValidationError`."""
    m = _matrix(site, vehicle_phases)
    out = []
    for r, (pid, phase) in enumerate(m.rows):
        row = m.a_per_kw[r]
        out.append(
            PhaseLimit(
                protection_id=pid,
                phase=phase,
                rated_current_a=float(m.rated_current_a[r]),
                connector_a_per_kw={cid: float(row[j]) for j, cid in enumerate(m.connector_ids) if row[j]},
                pv_a_per_kw=float(m.pv_a_per_kw[r]),
                base_load_a_per_kw=float(m.base_load_a_per_kw[r]),
            )
        )
    return out


@dataclass(frozen=True)
class Violation:
    """Net current above a protection's rating (either direction) on one phase at one step."""

    step: int
    protection_id: str
    phase: Phase
    current_a: float
    rated_current_a: float


@dataclass(frozen=True)
class GridViolation:
    """Grid import above the grid connection's limit at one step."""

    step: int
    import_kw: float
    limit_kw: float


@dataclass(frozen=True, eq=False)
class CheckReport:
    """A plan evaluated step by step against every limit of a site.

    `currents_a[r, k]` is the signed net current of row `rows[r] = (protection id, phase)` at
    step `k` (negative: flowing back to the grid).
    """

    violations: tuple[Violation, ...]
    grid_violations: tuple[GridViolation, ...]
    rows: tuple[tuple[str, Phase], ...]
    currents_a: FloatArray
    rated_current_a: FloatArray
    grid_import_kw: FloatArray
    max_loading_ratio: float
    worst_step: int | None
    """Step with the highest loading ratio (None for an empty plan)."""
    loading_ratio: FloatArray = field(repr=False)
    """`|currents_a| / rating`, same shape as `currents_a`."""

    @property
    def ok(self) -> bool:
        return not self.violations and not self.grid_violations

    def current_a(self, step: int, protection_id: str, phase: Phase) -> float:
        return float(self.currents_a[self.rows.index((protection_id, phase)), step])


def _series(name: str, values: Sequence[float], n_steps: int) -> FloatArray:
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return np.zeros(n_steps)
    if arr.shape != (n_steps,):
        raise ValueError(f"{name} has {arr.size} values, expected {n_steps} (one per step)")
    return arr


def check(
    site: Site,
    connector_power_kw: Mapping[str, Sequence[float]],
    vehicle_phases: Mapping[str, int],
    pv_kw: Sequence[float],
    base_load_kw: Sequence[float],
    tolerance_a: float = 0.1,
    grid_tolerance_kw: float = GRID_TOLERANCE_KW,
) -> CheckReport:
    """Evaluate a plan (mean kW per connector and step) against every protection on every
    phase and against the grid connection; the feasibility oracle of every planner test.

    Connectors missing from `connector_power_kw` draw nothing; empty `pv_kw` / `base_load_kw`
    mean zero. Every series must otherwise have one value per step. An invalid site raises
    `SiteValidationError` (like `constraints` and `downstream`).
    """
    m = _matrix(site, vehicle_phases)
    lengths = {len(v) for v in connector_power_kw.values()} | {len(pv_kw), len(base_load_kw)}
    n_steps = max(lengths, default=0)
    col = {cid: j for j, cid in enumerate(m.connector_ids)}
    power = np.zeros((len(m.connector_ids), n_steps))
    for cid, series in connector_power_kw.items():
        if cid not in col:
            raise ValueError(f"unknown connector {cid!r}")
        power[col[cid]] = _series(f"power of connector {cid!r}", series, n_steps)
    pv = _series("pv_kw", pv_kw, n_steps)
    base = _series("base_load_kw", base_load_kw, n_steps)

    # A sparse product: the matrix is mostly zeros, and a dense one goes through BLAS, whose
    # worker threads then spin on the other core (measured ~40 ms CPU per N = 200 re-plan).
    currents = (
        sp.csr_array(m.a_per_kw) @ power + np.outer(m.pv_a_per_kw, pv) + np.outer(m.base_load_a_per_kw, base)
    )
    rated = m.rated_current_a
    over = np.abs(currents) > rated[:, None] + tolerance_a
    violations = tuple(
        Violation(
            step=int(k),
            protection_id=m.rows[r][0],
            phase=m.rows[r][1],
            current_a=float(currents[r, k]),
            rated_current_a=float(rated[r]),
        )
        for k, r in zip(*np.nonzero(over.T), strict=True)  # ordered by step, then row
    )

    grid_import = np.maximum(0.0, power.sum(axis=0) + base - pv)
    limit_kw = float(site.grid_connection.max_power_kw)
    grid_violations = tuple(
        GridViolation(step=int(k), import_kw=float(grid_import[k]), limit_kw=limit_kw)
        for k in np.nonzero(grid_import > limit_kw + grid_tolerance_kw)[0]
    )

    loading = np.abs(currents) / rated[:, None] if rated.size else np.zeros((0, n_steps))
    if loading.size:
        flat = int(np.argmax(loading))
        max_ratio = float(loading.flat[flat])
        worst: int | None = flat % n_steps
    else:
        max_ratio, worst = 0.0, (0 if n_steps else None)
    return CheckReport(
        violations=violations,
        grid_violations=grid_violations,
        rows=m.rows,
        currents_a=currents,
        rated_current_a=rated,
        grid_import_kw=grid_import,
        max_loading_ratio=max_ratio,
        worst_step=worst,
        loading_ratio=loading,
    )
