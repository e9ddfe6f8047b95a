"""The cluster's planning demands (issue #18): coalescing, one planner per site at a time, a
dead worker's site taken over once its lease runs out, and no mark lost during a plan."""

from __future__ import annotations

import time
from datetime import timedelta

from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.core.events import SessionKey
from ems.planning.demands import LocalDemands, PhaseWait, SharedDemands
from ems.store.base import utcnow

QUIET_S = 0.1


def shared(ctx: EmsContext, holder: str, lease_s: float = 5.0, quiet_s: float = QUIET_S) -> SharedDemands:
    return SharedDemands(ctx.db, holder, quiet_s=quiet_s, max_wait_s=max(1.0, 2 * quiet_s), lease_s=lease_s)


def context(database_url: str) -> EmsContext:
    return EmsContext.create(Settings(database_url=database_url))


def test_marks_of_a_burst_make_one_claim_once_settled(database_url: str) -> None:
    # Settling waits on the wall clock: a quiet time of 1 s, not 0.1 s, so that a slow machine
    # (three SQLite commits under a loaded CI run took over 0.1 s) cannot settle the burst
    # before the first look.
    quiet_s = 1.0
    ctx = context(database_url)
    demands = shared(ctx, "w1", quiet_s=quiet_s)
    for trigger in ("session_started", "preferences", "session_started"):
        demands.mark("office", trigger)
    assert demands.due_units(utcnow()) == []  # still within quiet_s of the last mark
    time.sleep(quiet_s * 1.2)
    assert demands.due_units(utcnow()) == ["office"]
    claim = demands.claim("office", utcnow())
    assert claim is not None and claim.triggers == ("preferences", "session_started")
    assert shared(ctx, "w2", quiet_s=quiet_s).claim("office", utcnow()) is None
    demands.done(claim)
    assert demands.status("office") == (False, False)
    assert demands.due_units(utcnow()) == []


def test_a_site_is_planned_by_one_worker_and_a_dead_workers_site_is_taken_over(database_url: str) -> None:
    ctx = context(database_url)
    first, second = shared(ctx, "w1", lease_s=0.3), shared(ctx, "w2", lease_s=0.3)
    first.mark("office", "session_started")
    time.sleep(QUIET_S * 1.5)
    claim = first.claim("office", utcnow())
    assert claim is not None
    # While w1 plans and renews its lease, w2 may not take the site.
    for _ in range(4):
        time.sleep(0.1)
        assert first.renew() == 1
        assert second.claim("office", utcnow()) is None
    assert second.status("office") == (True, True)
    # w1 dies (no more renewals): once the lease ends, w2 takes the site and its triggers.
    time.sleep(0.35)
    taken = second.claim("office", utcnow())
    assert taken is not None and taken.seq == claim.seq
    first.done(claim)  # a late release by the dead worker does not undo w2's claim
    assert second.status("office") == (True, True)
    second.done(taken)
    assert second.status("office") == (False, False)


def test_a_mark_during_a_plan_keeps_the_site_pending(database_url: str) -> None:
    ctx = context(database_url)
    demands = shared(ctx, "w1")
    demands.mark("office", "session_started")
    time.sleep(QUIET_S * 1.5)
    claim = demands.claim("office", utcnow())
    assert claim is not None
    demands.mark("office", "session_stopped")  # arrives after the snapshot was read
    demands.done(claim)
    assert demands.status("office") == (True, False)
    time.sleep(QUIET_S * 1.5)
    again = demands.claim("office", utcnow())
    assert again is not None and again.triggers == ("session_stopped",)


def test_a_plan_window_end_is_due_on_the_ems_clock(database_url: str) -> None:
    ctx = context(database_url)
    demands = shared(ctx, "w1")
    now = utcnow()
    demands.planned("office", now + timedelta(minutes=15), [], [])
    assert not demands.replan_due("office", now)
    assert demands.claim("office", now) is None
    later = now + timedelta(minutes=16)
    assert demands.replan_due("office", later)
    claim = demands.claim("office", later)
    assert claim is not None and claim.triggers == ("window_end",)
    demands.done(claim)
    assert not demands.replan_due("office", later)


def test_units_due_and_not_queued_lately_are_handed_to_the_sweep_once(database_url: str) -> None:
    ctx = context(database_url)
    demands = shared(ctx, "w1")
    demands.mark_many(["a", "b"], "schedule")
    assert demands.drain_marked() == ["a", "b"]
    assert demands.drain_marked() == []
    time.sleep(QUIET_S * 1.5)
    assert demands.to_queue(utcnow()) == ["a", "b"]
    assert demands.to_queue(utcnow()) == []  # just queued: not again before `requeue_s`


def test_local_demands_coalesce_and_watch_phases() -> None:
    demands = LocalDemands(QUIET_S, 1.0)
    demands.mark("office", "site")
    demands.mark("office", "forecast")
    claim = demands.take(utcnow, wait_s=1.0)
    assert claim is not None and claim.triggers == ("forecast", "site")
    assert demands.take(utcnow, wait_s=0.05) is None
    key, other = SessionKey(1, "FR", "SIM", "s1"), SessionKey(1, "FR", "SIM", "s2")
    demands.planned("office", None, [PhaseWait(key, 1)], [key, other])
    assert demands.phases_measured(key) and not demands.phases_measured(key)
    assert not demands.phases_measured(other)
