"""What the store says at scrape time, for `GET /metrics`: the states Prometheus samples.

Counters of what happened live on `EmsContext.metrics` (`ems.core.metrics`); a state (how
deep the dispatch outbox is, how many sessions are active, what each site is planned to draw
now) is read from the database when scraped, so every replica reports the same truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from ems.admin.dashboard import step_offset, value_at
from ems.core.context import EmsContext
from ems.sites.unplaced import ACTIVE_SESSION_STATUSES
from ems.store.models import ChargingSession, Partner
from ems.store.planning import PlanRecord, ProfileOutbox

OPEN_OUTBOX_STATES = ("pending", "awaiting_result")
"""Outbox rows still to deliver or to hear back about; `done`, `dropped`, `superseded` are over."""


class StoreCollector(Collector):
    def __init__(self, ctx: EmsContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self.ctx.clock.now()
        with self.ctx.db() as db:
            outbox = GaugeMetricFamily(
                "ems_dispatch_outbox_depth",
                "Profiles queued or awaiting a result, by state.",
                labels=["state"],
            )
            depth = dict.fromkeys(OPEN_OUTBOX_STATES, 0)
            by_state = db.execute(
                select(ProfileOutbox.state, func.count())
                .where(ProfileOutbox.state.in_(OPEN_OUTBOX_STATES))
                .group_by(ProfileOutbox.state)
            )
            depth.update({state: count for state, count in by_state})
            for state, count in depth.items():
                outbox.add_metric([state], count)
            yield outbox

            active = GaugeMetricFamily(
                "ems_active_sessions", "Sessions that may draw now, by CPO.", labels=["partner"]
            )
            by_partner = db.execute(
                select(Partner.country_code, Partner.party_id, func.count(ChargingSession.id))
                .join(ChargingSession, ChargingSession.partner_id == Partner.id)
                .where(ChargingSession.status.in_(ACTIVE_SESSION_STATUSES))
                .group_by(Partner.country_code, Partner.party_id)
            )
            for country_code, party_id, count in by_partner:
                active.add_metric([f"{country_code}/{party_id}"], count)
            yield active

            power = GaugeMetricFamily(
                "ems_site_planned_power_kw",
                "What the latest plan of each site has its cars draw now, and its grid import, in kW.",
                labels=["site", "flow"],
            )
            sessions = GaugeMetricFamily(
                "ems_site_planned_sessions", "Sessions in the latest plan of each site.", labels=["site"]
            )
            latest = select(func.max(PlanRecord.id)).group_by(PlanRecord.site_id)
            for plan in db.scalars(select(PlanRecord).where(PlanRecord.id.in_(latest))):
                ev_kw, grid_kw = _now_kw(plan, now)
                power.add_metric([plan.site_id, "ev"], ev_kw)
                power.add_metric([plan.site_id, "grid_import"], grid_kw)
                sessions.add_metric([plan.site_id], plan.n_sessions)
            yield power
            yield sessions


def _now_kw(plan: PlanRecord, now: datetime) -> tuple[float, float]:
    """The plan's EV power and grid import in the step holding `now` (0 outside the plan: a
    metric does not carry a plan's last step on past its end, unlike the dashboard's view)."""
    k = step_offset(plan, now)
    if not 0 <= k < len(plan.result.get("steps") or []):
        return 0.0, 0.0
    ev_kw = sum(value_at(s.get("power_kw"), k) for s in (plan.result.get("sessions") or {}).values())
    return ev_kw, value_at(plan.result.get("grid_import_kw"), k)
