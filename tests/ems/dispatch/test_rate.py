"""The per-CPO rate limit (issue #18): a cluster's workers take their calls to a CPO from one
bucket in the database, so the CPO sees the configured rate however many workers send."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from ems.dispatch.outbox import Dispatcher
from ems.dispatch.rate import LocalRateLimit, SharedRateLimit
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.store.cluster import DispatchRate
from ems.store.db import transaction
from tests.ems.dispatch.test_dispatch import Sink, add_sessions, profile, setup

NO_REFILL_PER_S = 1e-9


def test_two_workers_send_one_burst_between_them(database_url: str) -> None:
    ctx, _, _, _ = setup(database_url, [])
    stamp = format_ocpi_datetime(ctx.clock.now())
    pks = add_sessions(ctx, [f"s{i}" for i in range(2, 11)])
    sinks = [Sink([]), Sink([])]
    workers = [
        Dispatcher(ctx, sink, rate_limit=SharedRateLimit(ctx.db, NO_REFILL_PER_S, burst=4)) for sink in sinks
    ]
    workers[0].enqueue_sets({pk: profile(16.0, stamp) for pk in pks})
    assert [worker.run_once() for worker in workers] == [4, 0]
    assert len(set(sinks[0].sent_to)) == 4

    # Each with a bucket of its own, the two would have sent twice the burst.
    alone = [Dispatcher(ctx, Sink([]), rate_limit=LocalRateLimit(NO_REFILL_PER_S, burst=2)) for _ in range(2)]
    assert [worker.run_once() for worker in alone] == [2, 2]


def test_the_shared_bucket_refills_at_the_rate_up_to_the_burst(database_url: str) -> None:
    ctx, _, _, _ = setup(database_url, [])
    rate = SharedRateLimit(ctx.db, rate_per_s=2.0, burst=5)
    assert rate.take(1, 10) == 5
    assert rate.take(1, 10) == 0

    def age_by(seconds: float) -> None:
        with transaction(ctx.db) as db:
            updated = db.scalars(select(DispatchRate.updated_wall)).one()
            db.execute(update(DispatchRate).values(updated_wall=updated - timedelta(seconds=seconds)))

    age_by(1.6)  # 3.2 tokens
    assert rate.take(1, 10) == 3
    age_by(3600)
    assert rate.take(1, 2) == 2
    assert rate.take(1, 10) == 3  # the burst, not an hour's worth
