"""What the group dashboard shows: the group's sites, its limits (from its file and from
outside), and its latest joint plan: the net import planned at the group's node against the
limit in force at each step, with each member site's planned import beside it. A nested group
(a feeder under a substation) has a dashboard of its own: its node in its tree's joint plan.

The latest joint plan is read back from the member sites' plan records: the planner stores
the group's record (`result["group_limits"]`, `ems.planning.planner.group_limits_record`) with
each site's part, so no table of its own is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from ems import sites
from ems.core.context import EmsContext
from ems.ocpi.datetimes import parse_ocpi_datetime
from ems.sites.groups import StoredGroup, tree_of
from ems.store.planning import PlanRecord
from grid_models.group import Group


@dataclass(frozen=True)
class MemberLine:
    site_id: str
    name: str
    exists: bool
    """False for a site deleted after the group was stored (planned without it)."""
    plan_id: int | None
    """The site's latest plan, when it was made as part of this group's plan."""


@dataclass(frozen=True)
class LimitLine:
    group_id: str
    limit_id: str
    source: str
    quantity: str
    from_outside: bool
    received_at: datetime | None
    data: dict[str, Any]


@dataclass(frozen=True)
class GroupBoard:
    stored: StoredGroup
    """The top-level group holding the group shown (it, or a group under it)."""
    node: Group
    """The group shown, with its limits from outside."""
    members: tuple[MemberLine, ...]
    limits: tuple[LimitLine, ...]
    planned_for: datetime | None
    record: dict[str, Any] | None
    """The latest joint plan's `group_limits` record (None: not planned as a group yet)."""
    site_import_kw: dict[str, list[float]]
    """Per member site of that plan: its planned grid import per step of the group's steps."""

    def chart(self) -> dict[str, Any] | None:
        """The power chart's data (unix seconds, kW; null where no limit is in force)."""
        if self.record is None:
            return None
        node = self.record["nodes"][self.node.id]
        return {
            "t": [parse_ocpi_datetime(t).timestamp() for t in self.record["steps"]],
            "series": [
                {"label": "Group import", "stroke": "#b3261e", "values": node["import_kw"]},
                {
                    "label": "Limit in force",
                    "stroke": "#111111",
                    "dash": True,
                    "values": node["max_import_kw"],
                },
                *(
                    {"label": site_id, "stroke": colour, "values": values}
                    for (site_id, values), colour in zip(self.site_import_kw.items(), _COLOURS, strict=False)
                ),
            ],
        }


_COLOURS = ("#1763c6", "#d9a400", "#7b4fb0", "#2e8540", "#c05600", "#00838f", "#8e24aa", "#5d4037")


def _latest_plans(ctx: EmsContext, site_ids: tuple[str, ...]) -> dict[str, PlanRecord]:
    out = {}
    with ctx.db() as db:
        for site_id in site_ids:
            plan = db.scalars(
                select(PlanRecord)
                .where(PlanRecord.site_id == site_id)
                .order_by(PlanRecord.id.desc())
                .limit(1)
            ).first()
            if plan is not None:
                out[site_id] = plan
    return out


def group_board(ctx: EmsContext, group_id: str) -> GroupBoard:
    """The dashboard of any stored group, top-level or nested; `GroupNotFoundError` for an
    unknown one."""
    stored = tree_of(ctx, group_id)
    node = stored.planned().find(group_id)
    assert node is not None  # tree_of found it in this tree
    site_ids = node.site_ids()
    live = {s.site_id: s.name for s in sites.list_sites(ctx)}
    plans = _latest_plans(ctx, site_ids)
    grouped = {
        site_id: plan
        for site_id, plan in plans.items()
        if (plan.result.get("group_limits") or {}).get("group_id") == stored.group_id
        and group_id in plan.result["group_limits"]["nodes"]
    }
    latest = max(grouped.values(), key=lambda p: p.id, default=None)
    record = latest.result["group_limits"] if latest is not None else None
    site_import: dict[str, list[float]] = {}
    if record is not None:
        n = len(record["steps"])
        for site_id in site_ids:
            plan = grouped.get(site_id)
            if plan is not None and plan.result["group_limits"] == record:
                values = [float(v) for v in plan.result.get("grid_import_kw") or []][:n]
                # past the site's own cars, it still draws its base load less its PV
                base = [float(v) for v in plan.result.get("base_load_kw") or []]
                pv = [float(v) for v in plan.result.get("pv_kw") or []]
                for k in range(len(values), n):
                    values.append((base[k] if k < len(base) else 0.0) - (pv[k] if k < len(pv) else 0.0))
                site_import[site_id] = values
    members = tuple(
        MemberLine(
            site_id,
            live.get(site_id, ""),
            site_id in live,
            grouped[site_id].id if site_id in site_import else None,
        )
        for site_id in site_ids
    )
    outside = {(s.group_id, s.limit.id): s for s in stored.outside_limits}
    limits = tuple(
        LimitLine(
            g.id,
            lim.id,
            lim.source,
            lim.quantity,
            (g.id, lim.id) in outside,
            outside[(g.id, lim.id)].received_at if (g.id, lim.id) in outside else None,
            outside[(g.id, lim.id)].data if (g.id, lim.id) in outside else {},
        )
        for g in node.walk()
        for lim in g.limits
    )
    return GroupBoard(
        stored,
        node,
        members,
        limits,
        latest.planned_for if latest is not None else None,
        record,
        site_import,
    )
