"""The planner: from domain events to a plan per site, and its changed profiles to dispatch.

Events mark a site dirty; a worker waits for the burst to settle (`quiet_s` without a new
event, at most `max_wait_s` after the first) and plans the site once. Only events that change
what a plan depends on trigger it: a session starting or stopping, a driver's preferences, a
location, the site's wiring, a forecast. Meter updates do not — they refresh the energy still
needed at the next plan, and the schedule (every 15 min) re-plans every site anyway.

A plan is made from a frozen snapshot (`ems.planning.snapshot`: site version, active sessions
with their needs, forecasts at `now` from the Clock), solved by the optimizer kept alive per
site, and stored with a digest of its inputs. Sessions on EVSEs the site model does not place
are planned on a conservative stand-in connector (see `ems.sites.conservative_connector`) and
flagged.

The planning unit is the site, or the top-level group a site is under (`group:<id>`,
`ems.sites.groups`): an event on any site of a group marks the group, and the group is planned
as one (`plan_group`): a snapshot per member site at one `now`, their series over the group's
horizon, one joint LP (`optimizer.group.PersistentGroupPlanner`, kept per group), then each
site's part stored and dispatched exactly as a site's own plan, with the group's limits in force
per step in the plan's `result["group_limits"]`. With a rule-based strategy (`solve` given) a
group's sites are planned each alone: those strategies know no group limit.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session as DbSession

from ems import sites
from ems.core.context import EmsContext
from ems.core.events import (
    DomainEvent,
    ForecastChanged,
    GroupChanged,
    LocationChanged,
    PreferencesChanged,
    SessionChange,
    SessionEvent,
    SessionKey,
    SiteChanged,
)
from ems.dispatch.outbox import Dispatcher
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.planning.demands import Claim, Demands, LocalDemands, PhaseWait
from ems.planning.needs import (
    Need,
    NeedInputs,
    PastSessionCache,
    SentProfileCache,
    SiteDefaults,
    StoredInputs,
    estimate_need,
    learned_defaults,
    load_stored_inputs,
    period_samples,
    read_until,
    site_past_sessions,
)
from ems.planning.snapshot import PlannedSession, Snapshot, next_window_end, site_defaults, solve_options
from ems.sites.forecasts import SeriesSource, StoredSeriesSource
from ems.sites.groups import (
    GROUP_UNIT_PREFIX,
    GroupNotFoundError,
    get_group,
    group_unit_id,
    groups_of_sites,
    groups_stamp,
)
from ems.store.base import utcnow
from ems.store.db import transaction
from ems.store.models import ChargingSession, Partner
from ems.store.planning import PlanRecord, SessionNeed
from grid_models.electrical import session_max_power_kw
from grid_models.group import Group, without_sites
from grid_models.site import Connector, Site
from optimizer.group import GroupPlan, GroupProblem, PersistentGroupPlanner, group_fallback_plan
from optimizer.problem import Plan, Problem, Session
from optimizer.solve import PersistentPlanner, fallback_plan

__all__ = [
    "ACTIVE_STATUSES",
    "UNPLACED_PRIORITY",
    "PlannedSession",
    "Planner",
    "PlannerSettings",
    "Snapshot",
    "next_window_end",
    "profile_to_ocpi",
    "site_defaults",
    "solve_options",
]

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ("ACTIVE", "PENDING")
UNPLACED_PRIORITY = 1000.0
SITE_HISTORY_REFRESH = timedelta(hours=1)
"""How long a site's learned defaults hold before its past sessions are read again."""
"""Sessions on unplaced EVSEs get their (conservative, reserved) power before anyone else."""


# Statements of every plan, built once (building them cost about as much as running them).
# A site's active sessions, found by its EVSEs in the index: a plan reads its own site's rows,
# not every active session of every site (which made each plan cost grow with the site count).
_ACTIVE_SESSIONS = (
    select(ChargingSession)
    .where(
        ChargingSession.evse_uid.in_(bindparam("evse_uids", expanding=True)),
        ChargingSession.status.in_(ACTIVE_STATUSES),
        ChargingSession.stale.is_(False),
    )
    .order_by(ChargingSession.id)
)
_NEEDS: Table = SessionNeed.__table__  # type: ignore[assignment]
_PLANS: Table = PlanRecord.__table__  # type: ignore[assignment]
_INSERT_NEED = insert(_NEEDS)
_INSERT_PLAN = insert(_PLANS)


@dataclass(frozen=True)
class PlannerSettings:
    step_s: int = 900
    horizon_s: int = 36 * 3600
    quiet_s: float = 0.1
    max_wait_s: float = 1.0
    objective: str = "self_consumption"
    min_current: bool = True
    mip_max_binaries: int | None = None
    """Above this many on/off decisions the minimum-current rule is met by rounding the LP,
    not by the exact MIP (`SolveOptions.mip_max_binaries`; None: the optimizer's default)."""
    kept_models: int = 256
    """Optimizer models kept alive for warm re-plans, the sites planned most recently (about
    1 MB each for 12 connectors over 36 h): a worker among thousands of sites stays bounded."""
    mip_horizon_s: int | None = 900
    """The MIP decides on/off over a plan's first step only; later steps are relaxed in it and
    then rounded. The server re-plans every 15 min and on every event, so that first step is
    what a plan surely draws. The June month's replay (re-planned hourly) took 22 s, against
    85-93 s with the MIP over the whole plan, 37 s over the first hour and 30 s over the first
    half hour, the KPIs within noise of each other (EV PV share 89.4-90.6% of perfect
    foresight's, delivered 99.0-99.2%) (`SolveOptions.mip_horizon_s`; None: all)."""


def profile_to_ocpi(plan: Plan, session_id: str) -> dict[str, Any]:
    """The optimizer's ChargingProfile as OCPI JSON (DateTimes with `Z`)."""
    profile = plan.sessions[session_id].charging_profile
    return {
        "start_date_time": format_ocpi_datetime(profile.start_date_time),
        "charging_rate_unit": profile.charging_rate_unit,
        "charging_profile_period": [
            {"start_period": p.start_period, "limit": p.limit} for p in profile.charging_profile_period
        ],
    }


def location_key(country_code: str, party_id: str, location_id: str) -> tuple[str, str, str]:
    """An OCPI Location as a site file links it: country and party case-insensitive, the id not."""
    return country_code.upper(), party_id.upper(), location_id


@dataclass(frozen=True)
class SiteIndex:
    """Where events belong: each wired connector's site, and the sites linked to each Location."""

    by_connector: dict[tuple[str, str], str]
    by_location: dict[tuple[str, str, str], tuple[str, ...]]

    @classmethod
    def of(cls, stored_sites: Iterable[sites.StoredSite]) -> SiteIndex:
        by_connector: dict[tuple[str, str], str] = {}
        by_location: dict[tuple[str, str, str], list[str]] = {}
        for stored in stored_sites:
            site_id = stored.site.id
            for connector in stored.site.connectors():
                by_connector[(connector.evse_uid, connector.connector_id)] = site_id
            for link in stored.site.ocpi_locations:
                key = location_key(link.country_code, link.party_id, link.location_id)
                if site_id not in by_location.setdefault(key, []):
                    by_location[key].append(site_id)
        return cls(by_connector, {key: tuple(ids) for key, ids in by_location.items()})


class Planner:
    def __init__(
        self,
        ctx: EmsContext,
        dispatcher: Dispatcher | None = None,
        series: SeriesSource | None = None,
        settings: PlannerSettings | None = None,
        solve: Callable[[Problem], Plan] | None = None,
        demands: Demands | None = None,
    ) -> None:
        self.ctx = ctx
        self.dispatcher = dispatcher
        self.series = series or StoredSeriesSource(ctx)
        self.settings = settings or PlannerSettings()
        self.demands = demands or LocalDemands(self.settings.quiet_s, self.settings.max_wait_s)
        """Which sites need a plan: this process's (`LocalDemands`) or the cluster's."""
        self._solve_override = solve
        self._persistent: OrderedDict[str, PersistentPlanner] = OrderedDict()
        self._group_planners: OrderedDict[str, PersistentGroupPlanner] = OrderedDict()
        self._site_groups: dict[str, str] = {}
        self._site_groups_stamp: object = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._site_index: SiteIndex | None = None
        self._site_index_stamp: object = None
        self._past_sessions = PastSessionCache()
        self._learned_defaults: dict[str, tuple[Site, datetime, SiteDefaults]] = {}
        self._sent_profiles = SentProfileCache()
        self._batch = threading.local()
        """This thread's batch of events (`on_events`): its marks and the stamps it read."""
        self.plans_made = 0

    # ---- events ----------------------------------------------------------------------------

    def on_events(self, events: Iterable[DomainEvent]) -> None:
        """Events read together (a worker's batch of the cluster's log): the sites' and groups'
        stamps read once for the batch, and the marks written a transaction per trigger, instead
        of three round trips and a commit per event (which made a burst of 200 events take
        seconds while the other workers waited for its plan tasks)."""
        batch = self._batch
        batch.marks, batch.checked = [], set()
        try:
            for event in events:
                self.on_event(event)
            marks: list[tuple[str, str]] = batch.marks
        finally:
            del batch.marks, batch.checked
        by_trigger: dict[str, list[str]] = {}
        for unit_id, trigger in marks:
            by_trigger.setdefault(trigger, []).append(unit_id)
        for trigger, unit_ids in by_trigger.items():
            self.demands.mark_many(unit_ids, trigger)

    def _mark_unit(self, unit_id: str, trigger: str) -> None:
        marks: list[tuple[str, str]] | None = getattr(self._batch, "marks", None)
        if marks is None:
            self.demands.mark(unit_id, trigger)
        else:
            marks.append((unit_id, trigger))

    def _stamp_checked(self, what: str) -> bool:
        """In a batch of events, whether `what`'s stamp was read already (then it is not again)."""
        checked: set[str] | None = getattr(self._batch, "checked", None)
        if checked is None:
            return False
        if what in checked:
            return True
        checked.add(what)
        return False

    def on_event(self, event: DomainEvent) -> None:
        if isinstance(event, SessionEvent):
            if event.change == SessionChange.UPDATED:
                # The first meter values of a car whose phases were unknown: planned as
                # three-phase, a single-phase car would draw a third of its plan until re-planned.
                if self.demands.phases_measured(event.key):
                    site_id = self.site_of(
                        event.evse_uid, event.connector_id, event.location_id, event.key.partner_id
                    )
                    if site_id is not None:
                        self.mark_dirty(site_id, "phases_measured")
                return
            if event.change == SessionChange.STOPPED and self.dispatcher is not None:
                pk = self._session_pk(event)
                if pk is not None:
                    self.dispatcher.enqueue_clear(pk)
            site_id = self.site_of(
                event.evse_uid, event.connector_id, event.location_id, event.key.partner_id
            )
            if site_id is not None:
                self.mark_dirty(site_id, f"session_{event.change}")
        elif isinstance(event, PreferencesChanged):
            for site_id in self._sites_of_session(event.key.partner_id, event.key.session_id):
                self.mark_dirty(site_id, "preferences")
        elif isinstance(event, LocationChanged):
            for site_id in self._sites_of_location(event.country_code, event.party_id, event.location_id):
                self.mark_dirty(site_id, "location")
        elif isinstance(event, SiteChanged):
            self._site_index = None
            self._persistent.pop(event.site_id, None)
            if not event.deleted:
                self.mark_dirty(event.site_id, "site")
            elif self.unit_of(event.site_id) != event.site_id:
                self.mark_dirty(event.site_id, "site")  # its group is planned without it
        elif isinstance(event, ForecastChanged):
            self.mark_dirty(event.site_id, "forecast")
        elif isinstance(event, GroupChanged):
            before = dict(self._site_groups)
            self._site_groups_stamp = None
            checked: set[str] | None = getattr(self._batch, "checked", None)
            if checked is not None:
                checked.discard("groups")
            after = self._groups_by_site()
            self._group_planners.pop(event.group_id, None)
            if not event.deleted:
                self._mark_unit(group_unit_id(event.group_id), "group")
            for site_id, group_id in before.items():
                if group_id == event.group_id and after.get(site_id) != group_id:
                    self.mark_dirty(site_id, "group")  # left the group: planned alone (or elsewhere)

    def mark_dirty(self, site_id: str, trigger: str) -> None:
        self._mark_unit(self.unit_of(site_id), trigger)

    # ---- planning units ---------------------------------------------------------------------

    def _groups_by_site(self) -> dict[str, str]:
        if self._stamp_checked("groups") and self._site_groups_stamp is not None:
            return self._site_groups
        stamp = groups_stamp(self.ctx)  # another process may have changed a group
        if stamp != self._site_groups_stamp:
            self._site_groups = dict(groups_of_sites(self.ctx))
            self._site_groups_stamp = stamp
        return self._site_groups

    def group_of(self, site_id: str) -> str | None:
        """The top-level group the site is planned with (None: planned alone)."""
        return self._groups_by_site().get(site_id)

    def unit_of(self, site_id: str) -> str:
        """The planning unit of a site: its top-level group's (`group:<id>`), or its own id."""
        group_id = self.group_of(site_id)
        return site_id if group_id is None else group_unit_id(group_id)

    def _session_pk(self, event: SessionEvent) -> int | None:
        key = event.key
        with self.ctx.db() as db:
            return db.scalar(
                select(ChargingSession.id).where(
                    ChargingSession.partner_id == key.partner_id,
                    ChargingSession.country_code == key.country_code,
                    ChargingSession.party_id == key.party_id,
                    ChargingSession.session_id == key.session_id,
                )
            )

    # ---- where sessions belong --------------------------------------------------------------

    def _index(self) -> SiteIndex:
        if not self._stamp_checked("wiring"):
            stamp = sites.wiring_stamp(self.ctx)  # another process may have changed a site
            if stamp != self._site_index_stamp:
                self._site_index, self._site_index_stamp = None, stamp
        if self._site_index is None:
            stored = (sites.get_site(self.ctx, summary.site_id) for summary in sites.list_sites(self.ctx))
            self._site_index = SiteIndex.of(stored)
        return self._site_index

    def site_of(self, evse_uid: str, connector_id: str, location_id: str, partner_id: int) -> str | None:
        """The site a session's connector is wired in, else the first site linked to its
        Location; None for a session at no site of this EMS (a CPO may push all its sessions:
        looking it up costs two reads, whatever the number of sites)."""
        index = self._index()
        site_id = index.by_connector.get((evse_uid, connector_id))
        if site_id is not None:
            return site_id
        with self.ctx.db() as db:
            partner = db.get(Partner, partner_id)
        if partner is None:
            return None
        found = self._sites_of_location(partner.country_code, partner.party_id, location_id)
        return found[0] if found else None

    def _sites_of_location(self, country_code: str, party_id: str, location_id: str) -> list[str]:
        return list(self._index().by_location.get(location_key(country_code, party_id, location_id), ()))

    def _sites_of_session(self, partner_id: int, session_id: str) -> list[str]:
        with self.ctx.db() as db:
            rows = db.execute(
                select(
                    ChargingSession.evse_uid, ChargingSession.connector_id, ChargingSession.location_id
                ).where(ChargingSession.partner_id == partner_id, ChargingSession.session_id == session_id)
            ).all()
        found = {self.site_of(evse, conn, loc, partner_id) for evse, conn, loc in rows}
        return [s for s in found if s is not None]

    # ---- the snapshot -----------------------------------------------------------------------

    def snapshot(self, site_id: str, now: datetime | None = None) -> Snapshot:
        now = now or self.ctx.clock.now()
        site, site_version = sites.current_site(self.ctx, site_id)
        by_key = {(c.evse_uid, c.connector_id): c for c in site.connectors()}
        unplaced = {
            (u.evse_uid, u.connector_id): u for u in sites.unplaced_of(self.ctx, site) if u.active_session
        }
        stand_ins: list[sites.ConservativeConnector] = []
        planned: list[PlannedSession] = []
        with self.ctx.db() as db:
            defaults = self._site_defaults(db, site, now)
            evse_uids = sorted({uid for uid, _ in by_key} | {uid for uid, _ in unplaced})
            rows = db.scalars(_ACTIVE_SESSIONS, {"evse_uids": evse_uids}).all() if evse_uids else []
            placed: list[tuple[ChargingSession, Connector, tuple[str, ...]]] = []
            for row in rows:
                key = (row.evse_uid, row.connector_id)
                connector = by_key.get(key)
                flags: tuple[str, ...] = ()
                if connector is None:
                    if key not in unplaced:
                        continue
                    stand_in = sites.conservative_connector(site, unplaced[key])
                    stand_ins.append(stand_in)
                    connector, flags = stand_in.connector, stand_in.flags
                if any(c.id == connector.id for _, c, _ in placed):
                    continue  # two sessions on one connector: the newer one is a CPO glitch
                placed.append((row, connector, flags))
            stored_inputs = load_stored_inputs(
                db, [row for row, _, _ in placed], self._past_sessions, self._sent_profiles
            )
        for row, connector, flags in placed:
            need = self._need(row, site, connector, defaults, stored_inputs, now)
            session_key = SessionKey(row.partner_id, row.country_code, row.party_id, row.session_id)
            metered = bool(stored_inputs.periods[row.id])
            planned.append(
                PlannedSession(row.id, row.session_id, connector, need, flags, session_key, metered)
            )
        if stand_ins:
            site = sites.with_conservative_connectors(site, stand_ins)
        problem = self._problem(site, now, planned)
        return Snapshot(site, site_version, now, tuple(planned), problem)

    def _site_defaults(self, db: DbSession, site: Site, now: datetime) -> SiteDefaults:
        """The site file's defaults, learned from its own past sessions once it has enough
        (`learned_defaults`); read again at most every `SITE_HISTORY_REFRESH` of the clock."""
        cached = self._learned_defaults.get(site.id)
        if cached is not None and cached[0] == site and now - cached[1] < SITE_HISTORY_REFRESH:
            return cached[2]
        past = site_past_sessions(db, sorted({c.evse_uid for c in site.connectors()}))
        defaults = learned_defaults(site_defaults(site), past)
        self._learned_defaults[site.id] = (site, now, defaults)
        return defaults

    def _need(
        self,
        row: ChargingSession,
        site: Site,
        connector: Connector,
        defaults: SiteDefaults,
        stored: StoredInputs,
        now: datetime,
    ) -> Need:
        phases = len(connector.phases)
        periods = stored.periods[row.id]
        inputs = NeedInputs(
            start=row.start_date_time,
            delivered_kwh=row.kwh,
            connector_max_power_kw=session_max_power_kw(site, connector, phases),
            connector_phases=phases,
            phase_voltage_v=site.phase_voltage_v,
            preference=stored.preferences[row.id],
            periods=period_samples(
                periods,
                read_until(periods, row.last_updated, now),
                stored.profiles[row.id],
                site.phase_voltage_v,
                phases,
            ),
            history=stored.history[row.id],
            defaults=defaults,
        )
        return estimate_need(inputs, now, timedelta(seconds=self.settings.step_s))

    def _problem(self, site: Site, now: datetime, planned: list[PlannedSession]) -> Problem:
        settings = self.settings
        sessions = []
        for p in planned:
            if p.unplaced_flags:
                reserved = p.connector.max_power_kw or 0.0
                hours = max(0.0, (p.need.departure - now).total_seconds()) / 3600.0
                sessions.append(
                    Session(
                        session_id=p.session_id,
                        connector_id=p.connector.id,
                        energy_needed_kwh=reserved * hours,
                        departure=p.need.departure,
                        vehicle_phases=3,
                        priority=UNPLACED_PRIORITY,
                    )
                )
                continue
            extra_kwh = p.need.energy_extra_kwh
            if self._solve_override is not None and p.need.energy_source == "stopped_full":
                # a rule serves all it is offered, grid or not (`optimizer.strategies`), and
                # the power it plans for a car that draws nothing is kept from the others:
                # a car found full is offered nothing more (only the optimizer can offer PV alone)
                extra_kwh = 0.0
            sessions.append(
                Session(
                    session_id=p.session_id,
                    connector_id=p.connector.id,
                    energy_needed_kwh=p.need.energy_needed_kwh,
                    departure=p.need.departure,
                    vehicle_phases=p.need.vehicle_phases,
                    max_power_kw=p.need.max_power_kw,
                    energy_extra_kwh=extra_kwh,
                )
            )
        horizon_end = max((s.departure for s in sessions), default=now + timedelta(seconds=settings.step_s))
        n_steps = max(1, min(settings.horizon_s, int((horizon_end - now).total_seconds())) // settings.step_s)
        series = self.series.step_series(site.id, now, settings.step_s, n_steps)
        if not any(pv > 0.0 for pv in series.pv_kw):
            # no PV ahead (none on the site, or no forecast): extra energy could come from
            # nowhere, so waiting for it only delays the car: all it may need is a need
            # (`ems.planning.needs`). (No PV *surplus* over a grey day was measured worse: 88.4% of
            # perfect foresight's EV PV share on the June month against 90.0%.)
            sessions = [
                replace(s, energy_needed_kwh=s.energy_needed_kwh + s.energy_extra_kwh, energy_extra_kwh=0.0)
                for s in sessions
            ]
        return Problem(
            site=site,
            now=now,
            sessions=tuple(sessions),
            step_s=settings.step_s,
            pv_kw=series.pv_kw,
            base_load_kw=series.base_load_kw,
            price_eur_per_kwh=series.price_eur_per_kwh,
            objective=settings.objective,  # type: ignore[arg-type]
            options=solve_options(
                settings.min_current, settings.horizon_s, settings.mip_max_binaries, settings.mip_horizon_s
            ),
        )

    # ---- planning ---------------------------------------------------------------------------

    def _solve(self, site_id: str, problem: Problem) -> Plan:
        """The optimizer's plan; never none: a solver that raises gets the safe fallback plan."""
        try:
            if self._solve_override is not None:
                return self._solve_override(problem)
            planner = self._persistent.get(site_id)
            if planner is None or planner.site != problem.site:
                # A new wiring version or a stand-in for an unplaced EVSE: a new model for it.
                planner = self._persistent[site_id] = PersistentPlanner(problem.site)
                while len(self._persistent) > self.settings.kept_models:
                    self._persistent.popitem(last=False)  # the site planned least recently
            self._persistent.move_to_end(site_id)
            return planner.update(problem)
        except Exception as exc:
            logger.exception("solver failed for site %s", site_id)
            self._persistent.pop(site_id, None)
            return fallback_plan(problem, f"solver failed: {exc.__class__.__name__}: {exc}")

    def _solve_group(self, group_id: str, gp: GroupProblem) -> GroupPlan:
        """The group's joint plan; never none: a solver that raises gets the safe fallback."""
        members = tuple(p.site for p in gp.ordered())
        try:
            kept = self._group_planners.get(group_id)
            if kept is None or kept.group != gp.group or kept.sites != members:
                # new limits, members or wiring: a new model for them
                kept = self._group_planners[group_id] = PersistentGroupPlanner(gp.group, members)
                while len(self._group_planners) > self.settings.kept_models:
                    self._group_planners.popitem(last=False)
            self._group_planners.move_to_end(group_id)
            return kept.update(gp)
        except Exception as exc:
            logger.exception("solver failed for group %s", group_id)
            self._group_planners.pop(group_id, None)
            return group_fallback_plan(gp, f"solver failed: {exc.__class__.__name__}: {exc}")

    def plan_site(self, site_id: str, trigger: str = "manual", triggered_at: datetime | None = None) -> int:
        """Plan one site now (with its whole group when it is in one): store the plan and the
        needs, hand changed profiles to dispatch; the site's plan id."""
        group_id = self.group_of(site_id)
        if group_id is not None:
            try:
                plan_ids = self.plan_group(group_id, trigger, triggered_at)
            except GroupNotFoundError:
                plan_ids = {}  # deleted meanwhile: the site is alone again
            if site_id in plan_ids:
                return plan_ids[site_id]
        started = time.perf_counter()
        snapshot = self.snapshot(site_id)
        plan = self._solve(site_id, snapshot.problem)
        total_ms = (time.perf_counter() - started) * 1000.0
        plan_id, queued = self._store_all(
            site_id, [(site_id, snapshot, plan, None)], trigger, triggered_at, total_ms
        )[site_id]
        if queued and self.dispatcher is not None:
            self.dispatcher.wake()
        return plan_id

    def plan_group(
        self, group_id: str, trigger: str = "manual", triggered_at: datetime | None = None
    ) -> dict[str, int]:
        """Plan every site under the top-level group as one unit; each site's plan id."""
        stored = get_group(self.ctx, group_id)
        live = {summary.site_id for summary in sites.list_sites(self.ctx)}
        group = without_sites(stored.planned(), set(stored.group.site_ids()) - live)
        if group is None:
            return {}
        now = self.ctx.clock.now()
        started = time.perf_counter()
        snapshots = [self.snapshot(site_id, now) for site_id in group.site_ids()]
        parts: list[tuple[str, Snapshot, Plan, dict[str, Any] | None]]
        if self._solve_override is not None:
            parts = [(s.site.id, s, self._solve(s.site.id, s.problem), None) for s in snapshots]
        else:
            # every site over the group's horizon: one without cars still draws its base load
            n_steps = max(s.problem.n_steps() for s in snapshots)
            extended = []
            for snapshot in snapshots:
                p = snapshot.problem
                series = self.series.step_series(p.site.id, now, p.step_s, n_steps)
                problem = replace(
                    p,
                    pv_kw=series.pv_kw,
                    base_load_kw=series.base_load_kw,
                    price_eur_per_kwh=series.price_eur_per_kwh,
                )
                extended.append(replace(snapshot, problem=problem))
            group_plan = self._solve_group(
                group_id, GroupProblem.sampled(group, [s.problem for s in extended])
            )
            record = group_limits_record(group, group_plan)
            parts = [(s.site.id, s, group_plan.plans[s.site.id], {"group_limits": record}) for s in extended]
            snapshots = extended
        total_ms = (time.perf_counter() - started) * 1000.0
        plans = self._store_all(group_unit_id(group_id), parts, trigger, triggered_at, total_ms)
        if any(queued for _plan_id, queued in plans.values()) and self.dispatcher is not None:
            self.dispatcher.wake()
        return {site_id: plan_id for site_id, (plan_id, _queued) in plans.items()}

    def _planned(self, db: DbSession, unit_id: str, snapshots: list[Snapshot]) -> None:
        """Tell the demands, in the plan's transaction, when to plan the unit again and which
        sessions to watch (a worker killed after the commit leaves no plan without them)."""
        ends = [end for end in (next_window_end(s) for s in snapshots) if end is not None]
        planned = [p for s in snapshots for p in s.sessions]
        self.demands.planned(
            unit_id,
            min(ends, default=None),
            [
                PhaseWait(p.key, p.session_pk)
                for p in planned
                if p.key is not None
                and not p.metered
                and p.need.phases_source == "connector"
                and len(p.connector.phases) == 3
            ],
            [p.key for p in planned if p.key is not None],
            db,
        )

    def _store_all(
        self,
        unit_id: str,
        parts: list[tuple[str, Snapshot, Plan, dict[str, Any] | None]],
        trigger: str,
        triggered_at: datetime | None,
        total_ms: float,
    ) -> dict[str, tuple[int, set[int]]]:
        """Store the plans of one planning unit, each site's with its needs and its outbox rows,
        and what the demands keep of the unit's plan, in one transaction: a group's plans are
        all stored or none is (a crash half-way never leaves some of its sites on the new joint
        plan and the others on the old one). Each site's plan id and outbox rows queued."""
        stored: dict[str, tuple[int, set[int]]] = {}
        with transaction(self.ctx.db) as db:
            for site_id, snapshot, plan, extra_result in parts:
                stored[site_id] = self._write_plan(
                    db, site_id, snapshot, plan, trigger, triggered_at, total_ms, extra_result
                )
            self._planned(db, unit_id, [snapshot for _, snapshot, _, _ in parts])
        for site_id, snapshot, plan, _extra in parts:
            plan_id = stored[site_id][0]
            self.plans_made += 1
            logger.info(
                "plan %d of site %s (%s): %s, %d sessions in %.0f ms",
                plan_id,
                site_id,
                trigger,
                plan.status,
                len(snapshot.sessions),
                total_ms,
                extra={
                    "site_id": site_id,
                    "plan_id": plan_id,
                    "trigger": trigger,
                    "status": plan.status,
                    "session_ids": ",".join(p.session_id for p in snapshot.sessions),
                },
            )
            self.ctx.metrics.plans.labels(trigger[:32], plan.status).inc()
            self.ctx.metrics.plan_build_seconds.observe(plan.build_ms / 1000.0)
            self.ctx.metrics.plan_solve_seconds.observe(plan.solve_ms / 1000.0)
        return stored

    def _write_plan(
        self,
        db: DbSession,
        site_id: str,
        snapshot: Snapshot,
        plan: Plan,
        trigger: str,
        triggered_at: datetime | None,
        total_ms: float,
        extra_result: dict[str, Any] | None,
    ) -> tuple[int, set[int]]:
        """One site's plan record, needs and outbox rows, in the caller's transaction."""
        profiles = {p.session_id: profile_to_ocpi(plan, p.session_id) for p in snapshot.sessions}
        result: dict[str, Any] = {
            "steps": [format_ocpi_datetime(t) for t in plan.steps],
            "step_s": plan.step_s,
            "sessions": {
                p.session_id: {
                    "session_pk": p.session_pk,
                    "connector": p.connector.id,
                    "power_kw": list(plan.sessions[p.session_id].power_kw),
                    "energy_planned_kwh": plan.sessions[p.session_id].energy_planned_kwh,
                    "unmet_kwh": plan.sessions[p.session_id].unmet_kwh,
                    "charging_profile": profiles[p.session_id],
                    "flags": list(p.unplaced_flags),
                }
                for p in snapshot.sessions
            },
            "grid_import_kw": list(plan.grid_import_kw),
            "pv_used_kw": list(plan.pv_used_kw),
            "pv_kw": list(snapshot.problem.pv_kw),
            "base_load_kw": list(snapshot.problem.base_load_kw),
            **(extra_result or {}),
        }
        if snapshot.sessions:
            db.execute(
                _INSERT_NEED,
                [
                    {
                        "session_pk": p.session_pk,
                        "estimated_at": snapshot.now,
                        "energy_needed_kwh": p.need.energy_expected_kwh,
                        "energy_source": p.need.energy_source,
                        "energy_extra_kwh": p.need.energy_extra_kwh,
                        "departure": p.need.expected_departure or p.need.departure,
                        "departure_source": p.need.departure_source,
                        "max_power_kw": p.need.max_power_kw,
                        "max_power_source": p.need.max_power_source,
                        "vehicle_phases": p.need.vehicle_phases,
                        "phases_source": p.need.phases_source,
                        "battery_capacity_kwh": p.need.battery_capacity_kwh,
                        "capacity_source": p.need.capacity_source,
                    }
                    for p in snapshot.sessions
                ],
            )
        inserted = db.connection().execute(
            _INSERT_PLAN,
            {
                "site_id": site_id,
                "site_version": snapshot.site_version,
                "created_at": utcnow(),
                "planned_for": snapshot.now,
                "trigger": trigger[:32],
                "triggered_at": triggered_at,
                "inputs_digest": snapshot.digest(),
                "status": plan.status,
                "method": plan.method,
                "objective": str(self.settings.objective),
                "message": plan.message,
                "n_sessions": len(snapshot.sessions),
                "build_ms": plan.build_ms,
                "solve_ms": plan.solve_ms,
                "total_ms": total_ms,
                "result": result,
            },
        )
        key = inserted.inserted_primary_key
        assert key is not None
        plan_id = int(key[0])
        # The outbox rows go in with the plan: a plan stored is a plan that will be delivered.
        queued = (
            self.dispatcher.enqueue_sets_in(
                db, {p.session_pk: profiles[p.session_id] for p in snapshot.sessions}, plan_id
            )
            if self.dispatcher is not None
            else set()
        )
        return plan_id, queued

    def replan_due(self, site_id: str, now: datetime) -> bool:
        """Whether a car's plan window on the site's unit has ended (`next_window_end`) by `now`."""
        return self.demands.replan_due(self.unit_of(site_id), now)

    def plan_all(self, trigger: str = "schedule") -> None:
        units = {self.unit_of(summary.site_id) for summary in sites.list_sites(self.ctx)}
        self.demands.mark_many(sorted(units), trigger)

    def plan_claimed(self, claim: Claim) -> int | None:
        """Plan a unit the demands handed out (a site, or `group:<id>`), then release it; the
        plan's id (a group: its first site's; None: no plan)."""
        trigger = "+".join(claim.triggers)
        try:
            if claim.unit_id.startswith(GROUP_UNIT_PREFIX):
                group_id = claim.unit_id[len(GROUP_UNIT_PREFIX) :]
                if group_id in set(self._groups_by_site().values()):
                    plan_ids = self.plan_group(group_id, trigger, claim.triggered_at)
                    return next(iter(plan_ids.values()), None)
            return self.plan_site(claim.unit_id, trigger, claim.triggered_at)
        except (sites.SiteNotFoundError, GroupNotFoundError):
            return None
        except Exception:
            logger.exception("planning site %s failed", claim.unit_id)
            return None
        finally:
            self.demands.done(claim)

    # ---- the worker thread ------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            claim = self.demands.take(self.ctx.clock.now, wait_s=1.0)
            if claim is not None and not self._stop.is_set():
                self.plan_claimed(claim)

    def start(self) -> None:
        self._unsubscribe = self.ctx.bus.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._loop, name="planner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.demands.wake()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout=10)


def _finite(values: tuple[float, ...]) -> list[float | None]:
    """JSON has no infinity (PostgreSQL refuses it): no limit in force is null."""
    return [v if math.isfinite(v) else None for v in values]


def group_limits_record(group: Group, plan: GroupPlan) -> dict[str, Any]:
    """What a group's plan kept, stored with each member site's plan: per group of the tree and
    step, the limit in force (kW, A; null: none), the id of the limit that set it, and the net
    import planned at the group's node; `sources` names where each limit id came from."""
    return {
        "group_id": group.id,
        "status": plan.status,
        "steps": [format_ocpi_datetime(t) for t in plan.steps],
        "sources": {lim.id: lim.source for g in group.walk() for lim in g.limits},
        "nodes": {
            g.id: {
                "sites": list(g.site_ids()),
                "max_import_kw": _finite(plan.limits[g.id].max_import_kw),
                "import_limit_ids": list(plan.limits[g.id].import_limit_ids),
                "max_current_a": _finite(plan.limits[g.id].max_current_a),
                "current_limit_ids": list(plan.limits[g.id].current_limit_ids),
                "import_kw": list(plan.import_kw.get(g.id, ())),
            }
            for g in group.walk()
        },
    }
