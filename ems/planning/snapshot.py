"""What a plan is made from: the frozen snapshot of a site, and pure functions of it.

A `Snapshot` holds the site version, its active sessions with their needs (`PlannedSession`)
and the optimizer's `Problem` at `now`, and the digest of them a plan is stored with. It is
data: the `Planner` (`ems.planning.planner`) gathers it from the store and solves it. The
functions here (the solve options, the site's defaults, when a plan window ends) read nothing
else, so they are apart from the planner's events, worker and storage.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ems.core.events import SessionKey
from ems.planning.needs import Need, SiteDefaults
from grid_models.site import Connector, Site
from optimizer.problem import Problem, SolveOptions


@dataclass(frozen=True)
class PlannedSession:
    session_pk: int
    session_id: str
    connector: Connector
    need: Need
    unplaced_flags: tuple[str, ...] = ()
    key: SessionKey | None = None
    metered: bool = True
    """Whether any charging period had arrived when this plan was made."""


@dataclass(frozen=True)
class Snapshot:
    site: Site
    site_version: int
    now: datetime
    sessions: tuple[PlannedSession, ...]
    problem: Problem

    def digest(self) -> str:
        payload = {
            "site": self.site.id,
            "version": self.site_version,
            "now": self.now.isoformat(),
            "sessions": [
                [
                    s.session_pk,
                    s.connector.id,
                    s.need.energy_needed_kwh,
                    s.need.energy_extra_kwh,
                    s.need.departure.isoformat(),
                    s.need.max_power_kw,
                    s.need.vehicle_phases,
                ]
                for s in self.sessions
            ],
            "pv": self.problem.pv_kw,
            "base": self.problem.base_load_kw,
            "price": self.problem.price_eur_per_kwh,
            "objective": self.problem.objective,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def solve_options(
    min_current: bool, horizon_s: int, mip_max_binaries: int | None, mip_horizon_s: int | None
) -> SolveOptions:
    """The optimizer's options of a plan (the optimizer's own default where
    `mip_max_binaries` is None)."""
    options = SolveOptions(min_current=min_current, horizon_cap_s=horizon_s, mip_horizon_s=mip_horizon_s)
    return options if mip_max_binaries is None else replace(options, mip_max_binaries=mip_max_binaries)


def next_window_end(snapshot: Snapshot) -> datetime | None:
    """When the first car still owed energy reaches the end of its plan window.

    A need's window ends at the departure we are sure of (`ems.planning.needs`), often before the car
    leaves; the profile then falls to 0, and what the car still wants must be re-planned right
    away, not at the next scheduled re-plan. A car found full takes PV only: it can wait.
    """
    ends = [
        p.need.departure
        for p in snapshot.sessions
        if p.need.energy_source != "stopped_full"
        and p.need.energy_needed_kwh + p.need.energy_extra_kwh > 0.0
        and p.need.departure > snapshot.now
    ]
    return min(ends, default=None)


def site_defaults(site: Site) -> SiteDefaults:
    """`defaults` in the site file (optional): `energy_kwh`, `stay_s`, `target_soc_pct`."""
    raw = site.extra.get("defaults") or {}
    base = SiteDefaults()
    return SiteDefaults(
        energy_kwh=float(raw.get("energy_kwh", base.energy_kwh)),
        stay=timedelta(seconds=float(raw.get("stay_s", base.stay.total_seconds()))),
        target_soc_pct=float(raw.get("target_soc_pct", base.target_soc_pct)),
    )
