"""The background services of a running EMS: planner, dispatch and scheduled jobs.

Started by the server (and `ems demo`), not by tests that only need the HTTP surface. On start
every site is planned once, so planning resumes after a restart, and the outbox is drained of
whatever was queued before it.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_SUBMITTED, JobSubmissionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from ems import sites
from ems.core.context import EmsContext
from ems.dispatch.outbox import Dispatcher, OcpiProfileSink, ProfileSink
from ems.ocpi.sync import sync_all
from ems.planning.planner import Planner, PlannerSettings
from ems.planning.strategies import plan_solver

logger = logging.getLogger(__name__)


class Runtime:
    def __init__(
        self,
        ctx: EmsContext,
        sink: ProfileSink | None = None,
        planner_settings: PlannerSettings | None = None,
    ) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.dispatcher = Dispatcher(
            ctx,
            sink or OcpiProfileSink(ctx),
            rate_per_s=settings.dispatch_rate_per_s,
            burst=settings.dispatch_burst,
        )
        solve = plan_solver(ctx.settings.plan_strategy)
        self.planner = Planner(ctx, self.dispatcher, settings=planner_settings, solve=solve)
        self.scheduler = BackgroundScheduler(timezone="UTC")

    def start(self) -> None:
        settings = self.ctx.settings
        self.scheduler.add_job(
            sync_all,
            "interval",
            args=[self.ctx],
            seconds=settings.pull_interval_s,
            jitter=min(300.0, settings.pull_interval_s / 10),
            id="ocpi-pull",
            max_instances=1,
            coalesce=True,
        )
        self.scheduler.add_job(
            self.planner.plan_all,
            "interval",
            kwargs={"trigger": "schedule"},
            seconds=settings.plan_interval_s,
            id="replan",
            max_instances=1,
            coalesce=True,
        )
        # Plan before delivering: what was queued before a stop is superseded by today's plan
        # rather than sent stale and then corrected.
        for summary in sites.list_sites(self.ctx):
            try:
                self.planner.plan_site(summary.site_id, "startup")
            except Exception:
                logger.exception("start-up plan of site %s failed", summary.site_id)
        self.scheduler.add_listener(self._job_submitted, EVENT_JOB_SUBMITTED)
        self.dispatcher.start()
        self.planner.start()
        self.scheduler.start()

    def _job_submitted(self, event: JobSubmissionEvent) -> None:
        """Scheduler lag: how late a job started against the run time it was due at."""
        late_s = (datetime.now(UTC) - max(event.scheduled_run_times)).total_seconds()
        self.ctx.metrics.scheduler_lag_seconds.labels(event.job_id).observe(max(0.0, late_s))

    def stop(self) -> None:
        self.scheduler.shutdown(wait=False)
        self.planner.stop()
        self.dispatcher.stop()
