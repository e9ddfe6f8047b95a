"""The electrical model of one site: a CIM-inspired tree of protections feeding charge points,
connectors (with their phase wiring), PV plants and building loads.

Frozen dataclasses so a site can be handed to the optimizer as a snapshot and shared across
threads. Everything here is pure data; validation lives in `grid_models.validation`,
file I/O in `grid_models.sitefile`, the electrical derivation in `grid_models.electrical`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Phase = Literal["L1", "L2", "L3"]
PHASES: tuple[Phase, ...] = ("L1", "L2", "L3")

PowerType = Literal["AC", "DC"]

DEFAULT_MIN_CURRENT_A = 6.0
"""IEC 61851: an AC vehicle charges at 0 or at least 6 A."""


@dataclass(frozen=True)
class GridConnection:
    """The point of common coupling: the subscribed or connected power of the whole site."""

    max_power_kw: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Protection:
    """A circuit breaker or fuse; `rated_current_a` holds on every phase it carries."""

    id: str
    parent: str | None
    rated_current_a: float
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    omitted: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """Optional keys absent from the site file, so writing it back does not add them."""


@dataclass(frozen=True)
class Connector:
    """One connector of a charge point.

    `phases[i]` is the grid phase that connector phase `i + 1` is wired to, so `("L2", "L3", "L1")`
    is a three-phase connector with rotated wiring and `("L2",)` a single-phase one on L2.
    `(evse_uid, connector_id)` ties it to the OCPI EVSE/Connector a CPO pushes.
    """

    id: str
    evse_uid: str
    connector_id: str
    phases: tuple[Phase, ...]
    max_current_a: float
    min_current_a: float = DEFAULT_MIN_CURRENT_A
    power_type: PowerType = "AC"
    max_power_kw: float | None = None
    """For DC connectors (and AC ones limited below V x A): the most the connector delivers."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    omitted: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """Optional keys absent from the site file, so writing it back does not add them."""


@dataclass(frozen=True)
class ChargePoint:
    id: str
    protection: str
    connectors: tuple[Connector, ...]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class PvPlant:
    """A PV plant; it injects equally on three phases under its protection."""

    id: str
    protection: str
    peak_power_kw: float
    tilt_deg: float = 30.0
    azimuth_deg: float = 180.0
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    omitted: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """Optional keys absent from the site file, so writing it back does not add them."""


@dataclass(frozen=True)
class Load:
    """A building load; it draws equally on its phases under its protection."""

    id: str
    protection: str
    phases: tuple[Phase, ...] = PHASES
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    omitted: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """Optional keys absent from the site file, so writing it back does not add them."""


@dataclass(frozen=True)
class OcpiLocationRef:
    """An OCPI Location a CPO pushes for this site: its EVSEs the site does not wire yet are
    listed as unplaced for the administrator."""

    country_code: str
    party_id: str
    location_id: str
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Site:
    id: str
    name: str
    timezone: str
    latitude: float
    longitude: float
    phase_voltage_v: float
    grid_connection: GridConnection
    protections: tuple[Protection, ...]
    charge_points: tuple[ChargePoint, ...] = ()
    pv_plants: tuple[PvPlant, ...] = ()
    loads: tuple[Load, ...] = ()
    ocpi_locations: tuple[OcpiLocationRef, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False)
    """Fields of the site file this model does not know, kept for an exact round trip."""
    omitted: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    """Optional keys absent from the site file, so writing it back does not add them."""

    def connectors(self) -> tuple[Connector, ...]:
        return tuple(c for cp in self.charge_points for c in cp.connectors)
