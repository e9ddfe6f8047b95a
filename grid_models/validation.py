"""Validation of a whole site tree.

A site drawn by hand is wrong in several places at once; the administrator fixes them in one
pass only if every problem is reported, each naming its element. So `validate` never stops at
the first problem.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from grid_models.site import PHASES, Site

ElementKind = str
"""One of `site`, `grid_connection`, `protection`, `charge_point`, `connector`, `pv_plant`,
`load`, `ocpi_location` (and `file` for a file that cannot be read at all)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one element of a site."""

    element_id: str
    element_kind: ElementKind
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.element_kind} {self.element_id!r}"
        if self.field:
            where += f" {self.field}"
        return f"{where}: {self.message}"


class SiteValidationError(ValueError):
    """A site refused as a whole; `.problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        lines = "\n".join(f"- {p}" for p in self.problems)
        super().__init__(f"invalid site ({len(self.problems)} problem(s)):\n{lines}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _is_number(value) and value > 0


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, element_id: str, kind: ElementKind, field: str, message: str) -> None:
        self.problems.append(Problem(element_id, kind, field, message))

    def positive(self, element_id: str, kind: ElementKind, field: str, value: Any) -> None:
        if not _positive(value):
            self.add(element_id, kind, field, f"must be a positive number, got {value!r}")

    def reference(self, element_id: str, kind: ElementKind, target: str, known: Iterable[str]) -> None:
        if target not in known:
            self.add(element_id, kind, "protection", f"unknown protection {target!r}")

    def phases(
        self, element_id: str, kind: ElementKind, phases: Sequence[str], sizes: tuple[int, ...]
    ) -> None:
        bad = [p for p in phases if p not in PHASES]
        if bad:
            self.add(element_id, kind, "phases", f"phase(s) {bad!r} not in L1, L2, L3")
        repeated = sorted({p for p in phases if list(phases).count(p) > 1})
        if repeated:
            self.add(element_id, kind, "phases", f"phase(s) {repeated!r} repeated")
        if len(phases) not in sizes:
            wanted = " or ".join(str(n) for n in sizes)
            self.add(element_id, kind, "phases", f"must list {wanted} phase(s), got {len(phases)}")


def _protection_cycles(site: Site) -> list[list[str]]:
    """Each cycle of the parent relation once, in file order of its first member."""
    parent = {p.id: p.parent for p in site.protections}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for start in parent:
        path: list[str] = []
        node: str | None = start
        while node is not None and node in parent and state.get(node) is None:
            state[node] = 1
            path.append(node)
            node = parent[node]
        if node is not None and state.get(node) == 1:
            cycles.append(path[path.index(node) :])
        for n in path:
            state[n] = 2
    return cycles


def validate(site: Site) -> list[Problem]:
    """Every problem of the site, in file order; an empty list means the site is usable."""
    out = _Collector()
    if not isinstance(site.id, str) or not site.id:
        out.add(str(site.id), "site", "id", "must be a non-empty string")
    out.positive(site.id, "site", "phase_voltage_v", site.phase_voltage_v)
    if not (_is_number(site.latitude) and -90 <= site.latitude <= 90):
        out.add(site.id, "site", "latitude", f"must be within -90..90, got {site.latitude!r}")
    if not (_is_number(site.longitude) and -180 <= site.longitude <= 180):
        out.add(site.id, "site", "longitude", f"must be within -180..180, got {site.longitude!r}")
    out.positive(site.id, "grid_connection", "max_power_kw", site.grid_connection.max_power_kw)

    # Ids are unique across every kind: the diagram editor and the API address elements by id.
    seen: dict[str, str] = {}
    elements: list[tuple[str, ElementKind]] = [(p.id, "protection") for p in site.protections]
    for cp in site.charge_points:
        elements.append((cp.id, "charge_point"))
        elements.extend((c.id, "connector") for c in cp.connectors)
    elements += [(pv.id, "pv_plant") for pv in site.pv_plants]
    elements += [(ld.id, "load") for ld in site.loads]
    for element_id, kind in elements:
        if not isinstance(element_id, str) or not element_id:
            out.add(str(element_id), kind, "id", "must be a non-empty string")
        elif element_id in seen:
            out.add(element_id, kind, "id", f"duplicate id (already used by a {seen[element_id]})")
        else:
            seen[element_id] = kind

    if not site.protections:
        out.add(site.id, "site", "protections", "at least one protection is required")
    protection_ids = {p.id for p in site.protections}
    for p in site.protections:
        out.positive(p.id, "protection", "rated_current_a", p.rated_current_a)
        if p.parent is None:
            continue
        if p.parent == p.id:
            out.add(p.id, "protection", "parent", "a protection cannot be its own parent")
        elif p.parent not in protection_ids:
            out.add(p.id, "protection", "parent", f"unknown parent {p.parent!r}")
    for cycle in _protection_cycles(site):
        if len(cycle) < 2:
            continue  # self-parent, reported above
        loop = " -> ".join([*cycle, cycle[0]])
        for member in cycle:
            out.add(member, "protection", "parent", f"cycle of parents: {loop}")

    connector_keys: dict[tuple[str, str], str] = {}
    for cp in site.charge_points:
        out.reference(cp.id, "charge_point", cp.protection, protection_ids)
        for c in cp.connectors:
            out.phases(c.id, "connector", c.phases, (1, 3))
            out.positive(c.id, "connector", "max_current_a", c.max_current_a)
            if not (_is_number(c.min_current_a) and c.min_current_a >= 0):
                out.add(c.id, "connector", "min_current_a", f"must be >= 0, got {c.min_current_a!r}")
            elif _positive(c.max_current_a) and c.min_current_a > c.max_current_a:
                out.add(
                    c.id,
                    "connector",
                    "min_current_a",
                    f"{c.min_current_a} A exceeds max_current_a {c.max_current_a} A",
                )
            if c.max_power_kw is not None:
                out.positive(c.id, "connector", "max_power_kw", c.max_power_kw)
            if c.power_type not in ("AC", "DC"):
                out.add(c.id, "connector", "power_type", f"must be AC or DC, got {c.power_type!r}")
            for name in ("evse_uid", "connector_id"):
                value = getattr(c, name)
                if not isinstance(value, str) or not value:
                    out.add(c.id, "connector", name, "must be a non-empty string")
            key = (c.evse_uid, c.connector_id)
            if key in connector_keys:
                out.add(
                    c.id,
                    "connector",
                    "connector_id",
                    f"(evse_uid, connector_id) {key!r} already used by connector {connector_keys[key]!r}",
                )
            else:
                connector_keys[key] = c.id

    for pv in site.pv_plants:
        out.reference(pv.id, "pv_plant", pv.protection, protection_ids)
        out.positive(pv.id, "pv_plant", "peak_power_kw", pv.peak_power_kw)
        if not (_is_number(pv.tilt_deg) and 0 <= pv.tilt_deg <= 90):
            out.add(pv.id, "pv_plant", "tilt_deg", f"must be within 0..90, got {pv.tilt_deg!r}")
        if not _is_number(pv.azimuth_deg):
            out.add(pv.id, "pv_plant", "azimuth_deg", f"must be a number, got {pv.azimuth_deg!r}")

    for ld in site.loads:
        out.reference(ld.id, "load", ld.protection, protection_ids)
        out.phases(ld.id, "load", ld.phases, (1, 2, 3))

    linked: dict[tuple[str, str, str], str] = {}
    for i, ref in enumerate(site.ocpi_locations):
        where = f"ocpi_locations[{i}]"
        sizes = (("country_code", 2, 2), ("party_id", 3, 3), ("location_id", 1, 36))
        for name, shortest, longest in sizes:
            value = getattr(ref, name)
            if not isinstance(value, str) or not shortest <= len(value) <= longest:
                span = str(longest) if shortest == longest else f"{shortest}..{longest}"
                out.add(where, "ocpi_location", name, f"must be a string of {span} characters, got {value!r}")
        ref_key = (str(ref.country_code).upper(), str(ref.party_id).upper(), str(ref.location_id))
        if ref_key in linked:
            out.add(
                where,
                "ocpi_location",
                "location_id",
                f"location {'/'.join(ref_key)} already listed at {linked[ref_key]}",
            )
        else:
            linked[ref_key] = where
    return out.problems


def ensure_valid(site: Site) -> Site:
    """The site itself if valid; raises `SiteValidationError` listing every problem otherwise."""
    problems = validate(site)
    if problems:
        raise SiteValidationError(problems)
    return site
