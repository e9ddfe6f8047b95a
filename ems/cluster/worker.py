"""`ems worker`'s runtime: plan and dispatch for the cluster.

A worker runs Celery tasks one at a time in its main thread (plan a unit, consume the event log,
pull the CPOs) and, beside them, two threads of its own:

- the dispatcher, whose outbox rows are claimed (`ems.dispatch.outbox`), so that two workers
  never send the same profile, and whose calls to each CPO come from the cluster's one bucket;
- the sweep, every `sweep_interval_s`: renew this worker's leases, read the event log (for
  wake-ups the broker lost), watch sessions whose phases were unknown, run the cluster's
  scheduled jobs (each slot claimed by one worker), and send plan tasks for every unit that is
  due and was not sent lately (a task lost with the broker, or held by a worker that died).

Add workers to plan more sites at once: each is one process, one plan at a time.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

from celery import Celery
from sqlalchemy import Table, bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError

from ems import sites
from ems.cluster.tasks import EVENTS_TASK, PLAN_TASK, PULL_TASK, QUEUE
from ems.core.context import EmsContext
from ems.core.events import event_from_json
from ems.dispatch.outbox import Dispatcher, OcpiProfileSink, ProfileSink
from ems.dispatch.rate import SharedRateLimit
from ems.ocpi.sync import sync_all
from ems.planning.demands import SharedDemands
from ems.planning.planner import Planner, PlannerSettings
from ems.planning.strategies import plan_solver
from ems.store.cluster import ClusterJobRun, DomainEventRecord
from ems.store.db import transaction

logger = logging.getLogger(__name__)

EVENT_BATCH = 500
_EVENTS: Table = DomainEventRecord.__table__  # type: ignore[assignment]
_PENDING_EVENTS = (
    select(_EVENTS.c.id, _EVENTS.c.kind, _EVENTS.c.payload)
    .order_by(_EVENTS.c.id)
    .limit(EVENT_BATCH)
    .with_for_update(skip_locked=True)
)
_DELETE_EVENTS = delete(_EVENTS).where(_EVENTS.c.id.in_(bindparam("ids", expanding=True)))


def worker_name() -> str:
    """This worker's name in leases and job runs: host, process and a nonce (a restarted
    process with the same pid is another worker)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_job_slot(ctx: EmsContext, job_id: str, interval_s: float, holder: str) -> bool:
    """Whether this worker runs `job_id` for the current slot of `interval_s` (one per cluster)."""
    slot = int(time.time() // interval_s)
    try:
        with transaction(ctx.db) as db:
            db.execute(insert(ClusterJobRun), {"job_id": job_id, "slot": slot, "holder": holder})
            db.execute(
                delete(ClusterJobRun).where(ClusterJobRun.job_id == job_id, ClusterJobRun.slot < slot - 96)
            )
    except IntegrityError:
        return False
    return True


class WorkerRuntime:
    def __init__(
        self,
        ctx: EmsContext,
        app: Celery,
        planner_settings: PlannerSettings | None = None,
        sink: ProfileSink | None = None,
    ) -> None:
        self.ctx = ctx
        self.app = app
        self.holder = worker_name()
        settings = planner_settings or PlannerSettings()
        self.demands = SharedDemands(
            ctx.db,
            self.holder,
            quiet_s=settings.quiet_s,
            max_wait_s=settings.max_wait_s,
            lease_s=ctx.settings.lease_s,
            requeue_s=max(5.0, 2 * ctx.settings.lease_s),
        )
        rate = SharedRateLimit(ctx.db, ctx.settings.dispatch_rate_per_s, ctx.settings.dispatch_burst)
        self.dispatcher = Dispatcher(ctx, sink or OcpiProfileSink(ctx), rate_limit=rate)
        self.planner = Planner(
            ctx,
            self.dispatcher,
            settings=settings,
            solve=plan_solver(ctx.settings.plan_strategy),
            demands=self.demands,
        )
        self._stop = threading.Event()
        self._sweep_thread: threading.Thread | None = None
        self._unsubscribe: list[Any] = []
        self.plans_made = 0

    # ---- tasks (run in the worker's main thread) --------------------------------------------

    def consume_events(self) -> int:
        """Turn the event log into demands; rows another worker is reading are skipped
        (PostgreSQL) and a row read twice only marks a unit twice. Deleted once applied."""
        sqlite = self.ctx.engine.url.get_backend_name() == "sqlite"
        with self.ctx.db() as db:
            rows = db.execute(_PENDING_EVENTS).all()
            if not rows:
                return 0
            events = []
            for row in rows:
                try:
                    events.append(event_from_json(row.kind, row.payload))
                except ValueError:
                    logger.error("event %d of the log is unreadable (%s): dropped", row.id, row.kind)
            self.planner.on_events(events)
            ids = [row.id for row in rows]
            if sqlite:
                db.rollback()  # SQLite: write in a transaction of its own, after the marks'
            else:
                db.execute(_DELETE_EVENTS, {"ids": ids})
                db.commit()
        if sqlite:
            with transaction(self.ctx.db) as db:
                db.execute(_DELETE_EVENTS, {"ids": ids})
        self.queue_plans(self.demands.drain_marked())
        return len(rows)

    def plan(self, unit_id: str) -> int | None:
        """Plan `unit_id` once its burst settled, if no other worker holds it; then send what
        changed. A burst still arriving is waited out here, at most `max_wait_s`: a task with a
        countdown would be held by whichever worker fetched it, not shared between workers."""
        settings = self.planner.settings
        deadline = time.monotonic() + settings.max_wait_s
        while True:
            claim = self.demands.claim(unit_id, self.ctx.clock.now())
            if claim is not None:
                break
            pending, leased = self.demands.status(unit_id)
            if not pending or leased or time.monotonic() > deadline:
                return None  # nothing to do, or a holder sends the next task itself once done
            time.sleep(settings.quiet_s / 2)
        plan_id = self.planner.plan_claimed(claim)
        self.plans_made += 1
        pending, _ = self.demands.status(unit_id)
        if pending:  # marked again while it was planned
            self.queue_plans([unit_id])
        self.dispatcher.wake()
        return plan_id

    def pull(self) -> None:
        sync_all(self.ctx)

    # ---- sending tasks ---------------------------------------------------------------------

    def queue_plans(self, unit_ids: Iterable[str]) -> None:
        ids = list(unit_ids)
        for unit_id in ids:
            try:
                self.app.send_task(PLAN_TASK, args=[unit_id], queue=QUEUE, retry=False)
            except Exception as exc:
                logger.warning("could not queue a plan of %s: %s", unit_id, exc)
                return  # the sweep sends it again once the broker is back
        self.demands.queued(ids)

    # ---- the sweep --------------------------------------------------------------------------

    def sweep(self) -> None:
        self.demands.renew()
        self.consume_events()
        self.demands.check_phase_waits()
        settings = self.ctx.settings
        if claim_job_slot(self.ctx, "replan", settings.plan_interval_s, self.holder):
            self.planner.plan_all("schedule")
        if claim_job_slot(self.ctx, "ocpi-pull", settings.pull_interval_s, self.holder):
            try:
                self.app.send_task(PULL_TASK, queue=QUEUE, retry=False)
            except Exception as exc:
                logger.warning("could not queue the pull: %s", exc)
        self.queue_plans(self.demands.drain_marked())
        self.queue_plans(self.demands.to_queue(self.ctx.clock.now()))

    def _sweep_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception:
                logger.exception("sweep failed")
            self._stop.wait(self.ctx.settings.sweep_interval_s)

    def start(self) -> None:
        # Events this process publishes itself (a pull's sessions, a profile's answers).
        self._unsubscribe.append(self.ctx.bus.subscribe(self.planner.on_event))
        self.dispatcher.start()
        self._sweep_thread = threading.Thread(target=self._sweep_loop, name="sweep", daemon=True)
        self._sweep_thread.start()
        logger.info("worker %s started (%d sites)", self.holder, len(sites.list_sites(self.ctx)))

    def stop(self) -> None:
        self._stop.set()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._sweep_thread is not None:
            self._sweep_thread.join(timeout=10)
        self.dispatcher.stop()


def register_tasks(app: Celery, runtime: WorkerRuntime) -> None:
    """The tasks this worker runs, bound to its runtime."""

    @app.task(name=EVENTS_TASK)  # type: ignore[untyped-decorator]
    def events() -> int:
        return runtime.consume_events()

    @app.task(name=PLAN_TASK)  # type: ignore[untyped-decorator]
    def plan(unit_id: str) -> int | None:
        return runtime.plan(unit_id)

    @app.task(name=PULL_TASK)  # type: ignore[untyped-decorator]
    def pull() -> None:
        runtime.pull()
