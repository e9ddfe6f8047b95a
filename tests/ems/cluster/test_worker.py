"""A replica and a worker on one database, the broker in memory (issue #18): what a CPO pushes
to the replica becomes a plan on the worker, and what the replica does not forward (meter
values) is found by the worker's sweep. The tasks are run by hand, one step at a time."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select

from ems import sites
from ems.cluster.forward import EventForwarder
from ems.cluster.tasks import celery_app
from ems.cluster.worker import WorkerRuntime, claim_job_slot
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.profiles import ProfileCallOutcome
from ems.planning.planner import PlannerSettings
from ems.sites.forecasts import import_series
from ems.sites.groups import MAX_GROUP_ID_CHARS, group_unit_id, put_group
from ems.sites.series import Series
from ems.store.cluster import DomainEventRecord, PlanningDemand
from ems.store.models import ChargingSession
from ems.store.planning import PlanRecord, SessionNeed
from tests.conftest import RunningEms, add_registered_partner, auth
from tests.support.ocpi_objects import charging_period, session
from tests.support.servers import REPO

OFFICE = REPO / "examples" / "sites" / "office-pv.json"
QUIET_S = 0.1


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[int] = []

    def send_profile(self, session_pk: int, charging_profile: dict[str, Any]) -> ProfileCallOutcome:
        self.sent.append(session_pk)
        return ProfileCallOutcome(str(uuid.uuid4()), "ACCEPTED", 30, None)

    def clear_profile(self, session_pk: int) -> ProfileCallOutcome:
        return ProfileCallOutcome(str(uuid.uuid4()), "ACCEPTED", 30, None)


@dataclass
class Pair:
    ems: RunningEms
    worker: WorkerRuntime
    sink: RecordingSink
    cpo: httpx.Client


@pytest.fixture
def pair(ems: RunningEms) -> Iterator[Pair]:
    app = celery_app(Settings(broker_url="memory://"))
    forwarder = EventForwarder(ems.ctx, app)
    forwarder.start()
    worker_ctx = EmsContext.create(
        Settings(database_url=ems.ctx.settings.database_url, broker_url="memory://")
    )
    sink = RecordingSink()
    worker = WorkerRuntime(
        worker_ctx, app, PlannerSettings(quiet_s=QUIET_S, max_wait_s=1.0, min_current=False), sink
    )
    token = add_registered_partner(ems.ctx)
    try:
        with httpx.Client(base_url=ems.url, headers=auth(token), timeout=10) as cpo:
            yield Pair(ems, worker, sink, cpo)
    finally:
        forwarder.stop()
        worker_ctx.close()


def stamp(offset_s: float = 0.0) -> str:
    return format_ocpi_datetime(datetime.now(UTC) + timedelta(seconds=offset_s))


def plans(ctx: EmsContext) -> int:
    with ctx.db() as db:
        return int(db.scalar(select(func.count()).select_from(PlanRecord)) or 0)


def logged_events(ctx: EmsContext) -> int:
    with ctx.db() as db:
        return int(db.scalar(select(func.count()).select_from(DomainEventRecord)) or 0)


def test_a_push_to_a_replica_is_planned_and_sent_by_a_worker(pair: Pair) -> None:
    ctx = pair.ems.ctx
    sites.import_site(ctx, json.loads(OFFICE.read_text()))
    at = stamp()
    reply = pair.cpo.put(
        "/ocpi/2.2.1/sessions/NL/CPO/s1",
        json=session("s1", evse_uid="FR*INE*E0001", start_date_time=at, last_updated=at),
    )
    assert reply.json()["status_code"] == 1000
    assert logged_events(ctx) == 2  # the site, the session's start: in the log before the answer
    assert pair.worker.consume_events() == 2
    assert logged_events(ctx) == 0
    assert pair.worker.plan("office-pv") is not None  # once the burst settled
    assert pair.worker.plan("office-pv") is None  # planned: nothing pending
    pair.worker.dispatcher.run_once()
    assert len(pair.sink.sent) == 1

    # Meter values are not forwarded; the sweep finds the car's first ones and re-plans it.
    period = charging_period(stamp(), 0.9, 16.0) | {
        "dimensions": [{"type": "POWER", "volume": 3.68}, {"type": "CURRENT", "volume": 16.0}]
    }
    reply = pair.cpo.patch(
        "/ocpi/2.2.1/sessions/NL/CPO/s1",
        json={"kwh": 0.9, "charging_periods": [period], "last_updated": stamp(1)},
    )
    assert reply.json()["status_code"] == 1000
    assert logged_events(ctx) == 0
    before = plans(ctx)
    assert pair.worker.demands.check_phase_waits() == ["office-pv"]
    time.sleep(QUIET_S * 1.5)
    assert pair.worker.plan("office-pv") is not None
    assert plans(ctx) == before + 1
    with ctx.db() as db:
        need = db.scalars(select(SessionNeed).order_by(SessionNeed.id.desc())).first()
    assert need is not None and (need.phases_source, need.vehicle_phases) == ("learned", 1)
    assert pair.worker.demands.check_phase_waits() == []


def test_a_scheduled_job_runs_once_per_cluster_and_slot(database_url: str) -> None:
    ctx = EmsContext.create(Settings(database_url=database_url))
    assert claim_job_slot(ctx, "replan", 3600, "w1")
    assert not claim_job_slot(ctx, "replan", 3600, "w2")
    assert claim_job_slot(ctx, "ocpi-pull", 3600, "w2")


def _office_copy(i: int) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(OFFICE.read_text().replace("FR*INE*E00", f"FR*S{i:02d}*E"))
    data["id"], data["name"] = f"site-{i:02d}", f"Car park {i}"
    return data


@contextmanager
def statements(ctx: EmsContext) -> Iterator[list[str]]:
    """The SQL statements `ctx` runs meanwhile."""
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    sqlalchemy_event.listen(ctx.engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        sqlalchemy_event.remove(ctx.engine, "before_cursor_execute", note)


def test_a_burst_of_events_costs_the_same_round_trips_whatever_its_size(pair: Pair) -> None:
    """A worker reads a batch of the log with the sites' and groups' stamps read once and the
    marks written together: 200 events must not cost 200 times the round trips of one, or the
    other workers wait seconds for the plan tasks of a burst."""
    ctx = pair.ems.ctx
    for i in range(12):
        sites.import_site(ctx, _office_copy(i))
    pair.worker.consume_events()  # the sites' own events
    counts = []
    for n_starts in (1, 3, 12):  # the first one builds the worker's index of the sites
        at = stamp()
        for i in range(n_starts):
            reply = pair.cpo.put(
                f"/ocpi/2.2.1/sessions/NL/CPO/b{n_starts}-{i}",
                json=session(
                    f"b{n_starts}-{i}", evse_uid=f"FR*S{i:02d}*E01", start_date_time=at, last_updated=at
                ),
            )
            assert reply.json()["status_code"] == 1000
        with statements(pair.worker.ctx) as seen:
            assert pair.worker.consume_events() == n_starts
        counts.append(len(seen))
        assert all(pair.worker.demands.status(f"site-{i:02d}")[0] for i in range(n_starts))
    assert counts[2] == counts[1], counts


def test_a_site_plan_reads_only_its_own_sessions(pair: Pair) -> None:
    """The snapshot finds a site's active sessions by its EVSEs: a plan's cost does not grow
    with the sessions of every other site."""
    ctx = pair.ems.ctx
    for i in range(3):
        sites.import_site(ctx, _office_copy(i))
    at = stamp()
    for i in range(3):
        for c in range(1, 4):
            sid = f"s{i}-{c}"
            pair.cpo.put(
                f"/ocpi/2.2.1/sessions/NL/CPO/{sid}",
                json=session(sid, evse_uid=f"FR*S{i:02d}*E0{c}", start_date_time=at, last_updated=at),
            ).raise_for_status()
    loaded: list[str] = []

    def note(target: ChargingSession, context: Any) -> None:
        loaded.append(target.session_id)

    sqlalchemy_event.listen(ChargingSession, "load", note)
    try:
        snapshot = pair.worker.planner.snapshot("site-01")
    finally:
        sqlalchemy_event.remove(ChargingSession, "load", note)
    assert sorted(p.session_id for p in snapshot.sessions) == ["s1-1", "s1-2", "s1-3"]
    assert set(loaded) == {"s1-1", "s1-2", "s1-3"}


def test_a_site_with_the_longest_id_allowed_gets_its_series_plans_and_demands_stored(pair: Pair) -> None:
    """Site ids may be MAX_SITE_ID_CHARS long: every table keyed by a site (or its planning
    unit) takes them, on PostgreSQL too, where a shorter column refuses the row."""
    ctx = pair.ems.ctx
    data = _office_copy(7)
    data["id"] = "site-" + "x" * (sites.MAX_SITE_ID_CHARS - 5)
    sites.import_site(ctx, data)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    import_series(
        ctx, data["id"], Series((now, now + timedelta(hours=1)), pv_kw=(5.0, 6.0), base_load_kw=(1.0, 1.0))
    )
    at = stamp()
    pair.cpo.put(
        "/ocpi/2.2.1/sessions/NL/CPO/long1",
        json=session("long1", evse_uid="FR*S07*E01", start_date_time=at, last_updated=at),
    ).raise_for_status()
    pair.worker.consume_events()
    time.sleep(QUIET_S * 1.5)
    assert pair.worker.plan(data["id"]) is not None
    with ctx.db() as db:
        assert db.scalar(select(PlanRecord.site_id).order_by(PlanRecord.id.desc()).limit(1)) == data["id"]


def test_a_group_is_one_unit_that_one_worker_at_a_time_plans(pair: Pair) -> None:
    """Events on two member sites make one demand, the group's; while one worker holds it, a
    second worker's task for it plans nothing, and the holder's plan covers both sites."""
    ctx = pair.ems.ctx
    for i in range(2):
        sites.import_site(ctx, _office_copy(i))
    group_id = "campus-" + "c" * (MAX_GROUP_ID_CHARS - 7)  # the longest allowed: its unit id fits too
    put_group(ctx, group_id, {"id": group_id, "name": "one contract", "sites": ["site-00", "site-01"]})
    at = stamp()
    for i in range(2):
        pair.cpo.put(
            f"/ocpi/2.2.1/sessions/NL/CPO/g{i}",
            json=session(f"g{i}", evse_uid=f"FR*S{i:02d}*E01", start_date_time=at, last_updated=at),
        ).raise_for_status()
    pair.worker.consume_events()
    unit = group_unit_id(group_id)
    assert pair.worker.demands.status(unit) == (True, False)
    assert not pair.worker.demands.status("site-00")[0] and not pair.worker.demands.status("site-01")[0]

    other_ctx = EmsContext.create(Settings(database_url=ctx.settings.database_url, broker_url="memory://"))
    other = WorkerRuntime(
        other_ctx,
        pair.worker.app,
        PlannerSettings(quiet_s=QUIET_S, max_wait_s=QUIET_S, min_current=False),
        RecordingSink(),
    )
    try:
        time.sleep(QUIET_S * 1.5)
        claim = pair.worker.demands.claim(unit, pair.worker.ctx.clock.now())
        assert claim is not None
        before = plans(ctx)
        assert other.plan(unit) is None  # held: the other worker waits it out and gives up
        assert plans(ctx) == before
        pair.worker.planner.plan_claimed(claim)
        with ctx.db() as db:
            planned = set(db.scalars(select(PlanRecord.site_id)))
        assert {"site-00", "site-01"} <= planned
        assert pair.worker.demands.status(unit) == (False, False)
    finally:
        other_ctx.close()


def test_a_plan_and_its_window_end_are_stored_together(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the demands keep of a plan (the window end that re-plans the site, the sessions
    watched for meter values) is written in the plan's transaction: a failure there stores
    neither, and a plan stored always has them."""
    ctx = pair.ems.ctx
    sites.import_site(ctx, _office_copy(3))
    at = stamp()
    pair.cpo.put(
        "/ocpi/2.2.1/sessions/NL/CPO/w1",
        json=session("w1", evse_uid="FR*S03*E01", start_date_time=at, last_updated=at),
    ).raise_for_status()
    pair.worker.consume_events()
    time.sleep(QUIET_S * 1.5)
    before = plans(ctx)

    def lost_connection(*args: Any) -> None:
        raise ConnectionError("the database went away")

    monkeypatch.setattr(pair.worker.demands, "_planned_in", lost_connection)
    assert pair.worker.plan("site-03") is None  # logged as failed
    assert plans(ctx) == before
    monkeypatch.undo()
    pair.worker.demands.mark("site-03", "retry")
    time.sleep(QUIET_S * 1.5)
    assert pair.worker.plan("site-03") is not None
    with ctx.db() as db:
        demand = db.get(PlanningDemand, "site-03")
    assert demand is not None and demand.replan_at is not None and demand.phase_waits != ""
