"""Helpers for the grid_models tests: sample sites, the depot generator, small hand-built sites.

(A module rather than conftest.py so test files can import it.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from grid_models.site import (
    ChargePoint,
    Connector,
    GridConnection,
    Load,
    Phase,
    Protection,
    PvPlant,
    Site,
)

SITES_DIR = Path(__file__).resolve().parents[2] / "examples" / "sites"
SAMPLE_FILES = ("office-pv.json", "public-carpark.json", "depot.json")


def make_depot_module() -> ModuleType:
    """examples/sites/make_depot.py, imported by path (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location("make_depot", SITES_DIR / "make_depot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def connector(cid: str, phases: tuple[Phase, ...], max_current_a: float = 32.0, **kwargs: Any) -> Connector:
    return Connector(
        id=cid,
        evse_uid=f"XX*TST*{cid}",
        connector_id="1",
        phases=phases,
        max_current_a=max_current_a,
        **kwargs,
    )


def small_site(
    protections: tuple[Protection, ...],
    charge_points: tuple[ChargePoint, ...] = (),
    pv_plants: tuple[PvPlant, ...] = (),
    loads: tuple[Load, ...] = (),
    grid_kw: float = 1000.0,
) -> Site:
    return Site(
        id="test",
        name="test",
        timezone="UTC",
        latitude=45.0,
        longitude=5.0,
        phase_voltage_v=230.0,
        grid_connection=GridConnection(max_power_kw=grid_kw),
        protections=protections,
        charge_points=charge_points,
        pv_plants=pv_plants,
        loads=loads,
    )
