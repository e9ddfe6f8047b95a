"""Dispatch rules against an in-process sink: what is sent, what is not, and when."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ems.core.clock import ManualClock
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.dispatch import outbox as dispatch
from ems.dispatch.outbox import Dispatcher
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.profiles import ProfileCallOutcome
from ems.store.base import utcnow
from ems.store.models import ChargingSession
from ems.store.planning import ProfileOutbox
from tests.conftest import add_registered_partner, push_active_sessions, registered_caller


class Sink:
    def __init__(self, answers: list[str | None]) -> None:
        self.answers = answers
        self.sent: list[dict[str, Any]] = []
        self.sent_to: list[int] = []

    def send_profile(self, session_pk: int, charging_profile: dict[str, Any]) -> ProfileCallOutcome:
        self.sent.append(charging_profile)
        self.sent_to.append(session_pk)
        answer = self.answers.pop(0) if self.answers else "ACCEPTED"
        return ProfileCallOutcome(str(uuid.uuid4()), answer, 30, None if answer else "CPO down")

    def clear_profile(self, session_pk: int) -> ProfileCallOutcome:
        return ProfileCallOutcome(str(uuid.uuid4()), "ACCEPTED", 30, None)


def profile(limit: float, start: str) -> dict[str, Any]:
    return {
        "start_date_time": start,
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": limit}],
    }


def setup(database_url: str, answers: list[str | None]) -> tuple[EmsContext, Dispatcher, Sink, int]:
    ctx = EmsContext.create(Settings(database_url=database_url))
    ctx.clock = ManualClock(utcnow())
    add_registered_partner(ctx)
    (pk,) = add_sessions(ctx, ["s1"])
    sink = Sink(answers)
    return ctx, Dispatcher(ctx, sink), sink, pk


def add_sessions(ctx: EmsContext, session_ids: list[str]) -> list[int]:
    """These sessions pushed by the registered CPO, starting now; every session's key, oldest first."""
    push_active_sessions(ctx, registered_caller(ctx), session_ids, ctx.clock.now())
    with ctx.db() as db:
        return list(db.scalars(select(ChargingSession.id).order_by(ChargingSession.id)))


def test_unchanged_profiles_are_not_sent_again(database_url: str) -> None:
    ctx, dispatcher, sink, pk = setup(database_url, [])
    start = format_ocpi_datetime(ctx.clock.now())
    assert dispatcher.enqueue_set(pk, profile(16.0, start))
    dispatcher.run_once()
    # The same limits from now on, restated from a later start: nothing to send.
    ctx.clock.advance(60)  # type: ignore[attr-defined]
    assert not dispatcher.enqueue_set(pk, profile(16.0, format_ocpi_datetime(ctx.clock.now())))
    assert dispatcher.enqueue_set(pk, profile(10.0, format_ocpi_datetime(ctx.clock.now())))
    dispatcher.run_once()
    assert [p["charging_profile_period"][0]["limit"] for p in sink.sent] == [16.0, 10.0]


def test_rejected_stops_asking_and_down_retries_with_backoff(database_url: str) -> None:
    ctx, dispatcher, sink, pk = setup(database_url, [None, None, "REJECTED"])
    start = format_ocpi_datetime(ctx.clock.now())
    dispatcher.enqueue_set(pk, profile(16.0, start))
    assert dispatcher.run_once() == 1
    assert dispatcher.run_once() == 0  # not due yet: backing off
    ctx.clock.advance(2)  # type: ignore[attr-defined]
    assert dispatcher.run_once() == 1
    ctx.clock.advance(timedelta(minutes=10).total_seconds())  # type: ignore[attr-defined]
    assert dispatcher.run_once() == 1  # third attempt: REJECTED
    with ctx.db() as db:
        row = db.scalars(select(ProfileOutbox)).one()
        assert (row.state, row.attempts, row.last_answer) == ("done", 3, "REJECTED")
    # The CPO said no for this session: a new plan does not ask again.
    assert not dispatcher.enqueue_set(pk, profile(8.0, format_ocpi_datetime(ctx.clock.now())))
    assert len(sink.sent) == 3


def test_a_session_without_a_profile_goes_first(database_url: str) -> None:
    """Nine cars already have their limit and a tenth has none: with one call left in the rate
    limit it goes to the tenth. (Ten sessions due: at eight or more the states were once read
    through the wrong index, every delivered row of the store.)"""
    ctx, dispatcher, sink, _ = setup(database_url, [])
    stamp = format_ocpi_datetime(ctx.clock.now())
    pks = add_sessions(ctx, [f"s{i}" for i in range(2, 11)])
    newcomer = pks[-1]
    for pk in pks[:-1]:
        dispatcher.enqueue_set(pk, profile(16.0, stamp))
    assert dispatcher.run_once() == 9
    one_call_left = Dispatcher(ctx, sink, rate_per_s=1e-9, burst=1)
    for limit, pk in [(10.0 + i, pk) for i, pk in enumerate(pks)]:
        one_call_left.enqueue_set(pk, profile(limit, stamp))
    assert one_call_left.run_once() == 1
    assert sink.sent_to[-1] == newcomer


def test_the_served_sessions_are_read_by_session(database_url: str) -> None:
    ctx, _, _, _ = setup(database_url, [])
    twelve = dispatch._SESSION_OUTBOX_STATES.params(pks=list(range(1, 13)))
    sql = str(twelve.compile(ctx.engine, compile_kwargs={"literal_binds": True}))
    with ctx.engine.connect() as connection:
        if ctx.engine.dialect.name == "postgresql":
            # PostgreSQL scans a table this small whatever the index: ask it not to, to see that
            # the index serves the query
            connection.exec_driver_sql("SET enable_seqscan = off")
            plan = connection.exec_driver_sql(f"EXPLAIN {sql}").fetchall()
        else:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").fetchall()
    assert "ix_profile_outbox_session_pk" in str(plan), plan


class HeldSink(Sink):
    """A CPO that holds its answer until released: another dispatcher runs during the call."""

    def __init__(self) -> None:
        super().__init__([])
        self.in_call = threading.Event()
        self.release = threading.Event()

    def send_profile(self, session_pk: int, charging_profile: dict[str, Any]) -> ProfileCallOutcome:
        self.in_call.set()
        assert self.release.wait(timeout=10)
        return super().send_profile(session_pk, charging_profile)


def test_a_profile_in_flight_is_not_sent_by_another_dispatcher(database_url: str) -> None:
    """Two workers' dispatchers on one outbox (issue #18): the rows one is sending are claimed,
    so the other sends none of them; each session gets its profile once."""
    ctx, _, _, _ = setup(database_url, [])
    stamp = format_ocpi_datetime(ctx.clock.now())
    pks = add_sessions(ctx, [f"s{i}" for i in range(2, 6)])
    held, other = HeldSink(), Sink([])
    first, second = Dispatcher(ctx, held, concurrency=8), Dispatcher(ctx, other)
    first.enqueue_sets({pk: profile(16.0, stamp) for pk in pks})
    with ThreadPoolExecutor(max_workers=1) as pool:
        made = pool.submit(first.run_once)
        assert held.in_call.wait(timeout=10)
        assert second.run_once() == 0
        held.release.set()
        assert made.result(timeout=10) == len(pks)
    assert (sorted(held.sent_to), other.sent_to) == (sorted(pks), [])
    assert second.run_once() == 0
    with ctx.db() as db:
        rows = list(db.scalars(select(ProfileOutbox)))
    assert {(row.state, row.attempts) for row in rows} == {("awaiting_result", 1)}
