"""Site groups (territories): several sites under shared limits (formats: the group file).

A group names member sites and nested groups (site ⊂ feeder ⊂ district) and carries its own
limits: an aggregate import cap in kW at the group's node (a contract, a feeder), optionally a
per-phase current in A there, each constant or a step series, each valid everywhere or only in
a window (a grid operator's flexibility request). A group is one planning unit: its sites are
planned in one LP whose group rows couple their grid imports.

Pure data and pure functions: the file is read and validated in `grid_models.groupfile`, the
limits in force are sampled on planning steps here (`sample_limits`), the rows a plan must
respect at each group's node are built from the member sites' own current rows
(`site_entry_currents`) and checked by `check_group`.

Semantics (kept by the optimizer and by `check_group`):
- a member site's net import `EV + base load − PV` counts at the group's node (an export of one
  site offsets another's import there, as behind one transformer or contract meter);
- `max_import_kw`: Σ over every site under the group of net import <= the limit;
- `max_current_a`: on each phase, Σ over those sites of the current at their grid connection
  (every root protection's net current, site phase L1 taken as the node's L1) <= the limit;
  only the import direction is limited (charging only adds to it; export is not limited, as at a
  site's grid connection);
- a limit is in force over a step when its validity window overlaps the step, at the lowest
  value its series takes over the step (a limit lowered at 17:05 holds on the whole 17:00 step);
  several limits of one quantity in force at once: the lowest holds;
- a step where base load and PV alone break a limit gets no charging under that group
  (no charging can make it safe) and counts as a violation in `check_group`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from grid_models.electrical import CheckReport, check, constraints
from grid_models.site import PHASES, Phase, Site

FloatArray = npt.NDArray[np.float64]

LimitQuantity = Literal["max_import_kw", "max_current_a"]
LIMIT_QUANTITIES: tuple[LimitQuantity, ...] = ("max_import_kw", "max_current_a")

GROUP_TOLERANCE_KW = 1e-3
"""Slack on a group's import limit in `check_group` (as on a site's grid connection)."""
GROUP_TOLERANCE_A = 0.1
"""Slack on a group's per-phase current limit in `check_group` (as on a protection)."""


@dataclass(frozen=True)
class LimitPoint:
    """From `start` until the next point's start (or the end of the limit's window): `value`."""

    start: datetime
    value: float


@dataclass(frozen=True)
class GroupLimit:
    """One limit of a group, from a contract, the group file or a grid operator.

    `value` is a constant; `series` a step function (before its first point this limit is not
    in force). `valid_from`/`valid_until` bound when it is in force (None: open). `source` and
    `id` say where it came from (`contract`, `dso`, `openadr3`...), so a plan can say which
    limit it kept and a newer limit from the same source can replace it.
    """

    id: str
    source: str
    quantity: LimitQuantity
    value: float | None = None
    series: tuple[LimitPoint, ...] = ()
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    omitted: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """Optional keys absent from the group file, so writing it back does not add them."""

    def values_over(self, start: datetime, end: datetime) -> float | None:
        """The lowest value in force at any time in `[start, end)`; None if not in force then."""
        if self.valid_from is not None and end <= self.valid_from:
            return None
        if self.valid_until is not None and start >= self.valid_until:
            return None
        if self.value is not None:
            return float(self.value)
        lo = start if self.valid_from is None else max(start, self.valid_from)
        hi = end if self.valid_until is None else min(end, self.valid_until)
        found: float | None = None
        for i, point in enumerate(self.series):
            until = self.series[i + 1].start if i + 1 < len(self.series) else None
            if point.start < hi and (until is None or until > lo):
                found = float(point.value) if found is None else min(found, float(point.value))
        return found


@dataclass(frozen=True)
class Group:
    """A territory: member sites (by site id), nested groups, and this node's limits."""

    id: str
    name: str
    sites: tuple[str, ...] = ()
    groups: tuple[Group, ...] = ()
    limits: tuple[GroupLimit, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    omitted: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    def walk(self) -> Iterator[Group]:
        """This group and every group under it, parents before children, in file order."""
        yield self
        for child in self.groups:
            yield from child.walk()

    def site_ids(self) -> tuple[str, ...]:
        """Every site under this group, in file order (own sites first, then each child's)."""
        return tuple(s for g in self.walk() for s in g.sites)

    def find(self, group_id: str) -> Group | None:
        return next((g for g in self.walk() if g.id == group_id), None)

    def parent_of(self, group_id: str) -> Group | None:
        """The group `group_id` is directly under (None: it is this tree's top, or not in it)."""
        return next((g for g in self.walk() if any(c.id == group_id for c in g.groups)), None)


def with_limits(group: Group, added: Mapping[str, Sequence[GroupLimit]]) -> Group:
    """The tree with `added[group_id]` appended to each group's own limits (limits from outside,
    kept apart from the group file)."""
    return replace(
        group,
        limits=group.limits + tuple(added.get(group.id, ())),
        groups=tuple(with_limits(child, added) for child in group.groups),
    )


def without_sites(group: Group, gone: Set[str]) -> Group | None:
    """The tree without the sites in `gone` (deleted since the group was stored), and without the
    groups left with no site under them; None when no site is left at all."""
    children = tuple(c for c in (without_sites(child, gone) for child in group.groups) if c is not None)
    kept = replace(group, sites=tuple(s for s in group.sites if s not in gone), groups=children)
    return kept if kept.site_ids() else None


@dataclass(frozen=True)
class GroupStepLimits:
    """A group's limits sampled on planning steps: one value per step (`inf`: none in force),
    and the id of the limit that set it (None where none is in force), for the plan's record."""

    group_id: str
    max_import_kw: tuple[float, ...]
    max_current_a: tuple[float, ...]
    import_limit_ids: tuple[str | None, ...]
    current_limit_ids: tuple[str | None, ...]

    @property
    def n_steps(self) -> int:
        return len(self.max_import_kw)

    def has_import_limit(self) -> bool:
        return any(math.isfinite(v) for v in self.max_import_kw)

    def has_current_limit(self) -> bool:
        return any(math.isfinite(v) for v in self.max_current_a)


def _sample(
    limits: Sequence[GroupLimit], steps: Sequence[tuple[datetime, datetime]]
) -> tuple[tuple[float, ...], tuple[str | None, ...]]:
    values: list[float] = []
    ids: list[str | None] = []
    for start, end in steps:
        best, best_id = math.inf, None
        for lim in limits:
            v = lim.values_over(start, end)
            if v is not None and v < best:
                best, best_id = v, lim.id
        values.append(best)
        ids.append(best_id)
    return tuple(values), tuple(ids)


def sample_limits(group: Group, start: datetime, step_s: int, n_steps: int) -> dict[str, GroupStepLimits]:
    """Every group's limits (this one and each nested one) on `n_steps` steps of `step_s` from
    `start`: what the optimizer takes (it never reads a clock or a series itself)."""
    if start.tzinfo is None:
        raise ValueError("start must carry a UTC offset")
    steps = [
        (start + timedelta(seconds=k * step_s), start + timedelta(seconds=(k + 1) * step_s))
        for k in range(n_steps)
    ]
    out = {}
    for g in group.walk():
        imports = [lim for lim in g.limits if lim.quantity == "max_import_kw"]
        currents = [lim for lim in g.limits if lim.quantity == "max_current_a"]
        kw, kw_ids = _sample(imports, steps)
        amps, amp_ids = _sample(currents, steps)
        out[g.id] = GroupStepLimits(g.id, kw, amps, kw_ids, amp_ids)
    return out


@dataclass(frozen=True)
class PhaseCurrent:
    """The current on one phase at a site's grid connection, linear in the session powers and
    the site's series: `Σ a·P + pv_a_per_kw·pv_kw + base_load_a_per_kw·base_load_kw`."""

    phase: Phase
    connector_a_per_kw: Mapping[str, float]
    pv_a_per_kw: float
    base_load_a_per_kw: float


def site_entry_currents(
    site: Site, vehicle_phases: Mapping[str, int] | None = None
) -> tuple[PhaseCurrent, ...]:
    """The current on L1, L2, L3 where the site meets the grid: the sum of its root protections'
    rows (`constraints`), which together carry everything on the site."""
    roots = {p.id for p in site.protections if p.parent is None}
    out = []
    rows = constraints(site, vehicle_phases)
    for phase in PHASES:
        coef: dict[str, float] = {}
        pv = base = 0.0
        for row in rows:
            if row.protection_id in roots and row.phase == phase:
                for cid, a in row.connector_a_per_kw.items():
                    coef[cid] = coef.get(cid, 0.0) + a
                pv += row.pv_a_per_kw
                base += row.base_load_a_per_kw
        out.append(PhaseCurrent(phase, coef, pv, base))
    return tuple(out)


@dataclass(frozen=True)
class GroupViolation:
    """A group's limit broken at one step: `quantity` is `max_import_kw` (value in kW) or
    `max_current_a` (value in A, on `phase`)."""

    step: int
    group_id: str
    quantity: LimitQuantity
    value: float
    limit: float
    phase: Phase | None = None


@dataclass(frozen=True, eq=False)
class GroupCheckReport:
    """A joint plan evaluated against every member site's own limits and every group's.

    `import_kw[group_id]` is the net import at the group's node per step; `current_a[group_id]`
    the (3, steps) current per phase there (computed only for groups with a current limit)."""

    sites: Mapping[str, CheckReport]
    violations: tuple[GroupViolation, ...]
    import_kw: Mapping[str, FloatArray]
    current_a: Mapping[str, FloatArray]

    @property
    def ok(self) -> bool:
        return not self.violations and all(r.ok for r in self.sites.values())

    @property
    def protection_violations(self) -> int:
        return sum(len(r.violations) for r in self.sites.values())


@dataclass(frozen=True)
class SitePower:
    """What one member site draws over the steps checked: kW per connector and its series."""

    connector_power_kw: Mapping[str, Sequence[float]]
    vehicle_phases: Mapping[str, int]
    pv_kw: Sequence[float]
    base_load_kw: Sequence[float]


def _padded(values: Sequence[float], n_steps: int) -> FloatArray:
    arr = np.zeros(n_steps)
    vals = np.asarray(values, dtype=float)[:n_steps]
    arr[: vals.size] = vals
    return arr


def check_group(
    group: Group,
    sites: Mapping[str, Site],
    power: Mapping[str, SitePower],
    limits: Mapping[str, GroupStepLimits],
    tolerance_a: float = GROUP_TOLERANCE_A,
    tolerance_kw: float = GROUP_TOLERANCE_KW,
) -> GroupCheckReport:
    """Every member site's `check` and every group's limits at every step of `limits`: the
    feasibility oracle of joint planning. Series shorter than the limits count as 0 past their
    end (a site with no car still draws its base load while the series lasts)."""
    missing = [s for s in group.site_ids() if s not in sites or s not in power]
    if missing:
        raise ValueError(f"group {group.id!r}: no site or power for {', '.join(missing)}")
    n_steps = max((lim.n_steps for lim in limits.values()), default=0)
    site_reports: dict[str, CheckReport] = {}
    net_kw: dict[str, FloatArray] = {}
    entry_a: dict[str, FloatArray] = {}
    for site_id in group.site_ids():
        site, p = sites[site_id], power[site_id]
        site_reports[site_id] = check(
            site, p.connector_power_kw, p.vehicle_phases, p.pv_kw, p.base_load_kw, tolerance_a=tolerance_a
        )
        conn = {cid: _padded(v, n_steps) for cid, v in p.connector_power_kw.items()}
        pv, base = _padded(p.pv_kw, n_steps), _padded(p.base_load_kw, n_steps)
        ev = np.sum(list(conn.values()), axis=0) if conn else np.zeros(n_steps)
        net_kw[site_id] = ev + base - pv
        currents = np.zeros((3, n_steps))
        for k, row in enumerate(site_entry_currents(site, p.vehicle_phases)):
            currents[k] = row.pv_a_per_kw * pv + row.base_load_a_per_kw * base
            for cid, a in row.connector_a_per_kw.items():
                if cid in conn:
                    currents[k] += a * conn[cid]
        entry_a[site_id] = currents
    violations: list[GroupViolation] = []
    import_kw: dict[str, FloatArray] = {}
    current_a: dict[str, FloatArray] = {}
    for g in group.walk():
        members = g.site_ids()
        node_kw = np.sum([net_kw[s] for s in members], axis=0) if members else np.zeros(n_steps)
        import_kw[g.id] = node_kw
        lim = limits.get(g.id)
        if lim is None:
            continue
        kw_cap = np.asarray(lim.max_import_kw, dtype=float)
        for step in np.flatnonzero(node_kw[: kw_cap.size] > kw_cap + tolerance_kw):
            violations.append(
                GroupViolation(int(step), g.id, "max_import_kw", float(node_kw[step]), float(kw_cap[step]))
            )
        if lim.has_current_limit():
            node_a = np.sum([entry_a[s] for s in members], axis=0)
            current_a[g.id] = node_a
            a_cap = np.asarray(lim.max_current_a, dtype=float)
            over = node_a[:, : a_cap.size] > a_cap[None, :] + tolerance_a
            for ph, k in zip(*np.nonzero(over), strict=True):
                violations.append(
                    GroupViolation(
                        int(k), g.id, "max_current_a", float(node_a[ph, k]), float(a_cap[k]), PHASES[int(ph)]
                    )
                )
    violations.sort(key=lambda v: (v.step, v.group_id, v.quantity, v.phase or ""))
    return GroupCheckReport(site_reports, tuple(violations), import_kw, current_a)
