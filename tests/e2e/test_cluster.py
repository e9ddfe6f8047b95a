"""The EMS as a cluster, with real processes on this machine (issue #18).

PostgreSQL and Redis from Debian's packages, two `ems serve` replicas behind a round-robin
proxy, two `ems worker`s, and the CPO simulator pushing through the proxy, so that pushes reach
both replicas alternately. Every session gets its profile, no profile is sent twice, and a
worker killed with SIGKILL in the middle of the arrivals, then the broker killed and started
again, lose nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ems import sites
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi.partners import invite
from ems.store.models import ChargingSession, ProfileRequest
from ems.store.planning import PlanRecord, ProfileOutbox
from tests.support.postgres import postgres_database
from tests.support.redis import RedisServer, redis_server
from tests.support.round_robin import round_robin_app
from tests.support.servers import REPO, ProcessServer, ThreadedServer, free_port, wait_for
from tests.support.simulated_cpo import simulator_process, write_log

pytestmark = pytest.mark.e2e

SPEED = 60.0
SITE = REPO / "examples" / "sites" / "office-pv.json"
CARS = 12


class WorkerProcess:
    """`ems worker` in a process of its own; ready once it logs that it started."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ems.cli", "worker", "--log-level", "info"],
            env={**os.environ, **env},
            cwd=REPO,
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: "started" in log_path.read_text() or self.process.poll() is not None, 30, "a worker")
        if self.process.poll() is not None:
            raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@dataclass
class Cluster:
    ctx: EmsContext
    workers: list[WorkerProcess]
    redis: RedisServer
    served: dict[str, int]
    replicas: list[str]
    env: dict[str, str]
    tmp: Path


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    database_url = postgres_database(request)
    redis = redis_server(tmp_path)
    proxy_port, ports = free_port(), [free_port(), free_port()]
    clock_start = datetime.now(UTC).replace(microsecond=0)
    real_start = time.time()
    env = {
        "EMS_DATABASE_URL": database_url,
        "EMS_BROKER_URL": redis.url,
        "EMS_PUBLIC_URL": f"http://127.0.0.1:{proxy_port}",
        "EMS_CLOCK_START": clock_start.isoformat(),
        "EMS_CLOCK_SPEED": str(SPEED),
        "EMS_CLOCK_REAL_START_UNIX_S": str(real_start),
        "EMS_PLAN_INTERVAL_S": "3600",
        "EMS_LEASE_S": "3",
        "EMS_SWEEP_INTERVAL_S": "0.5",
    }
    settings = Settings(**{k.removeprefix("EMS_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    ctx = EmsContext.create(settings)
    sites.import_site(ctx, json.loads(SITE.read_text()))
    invitation = invite(ctx, "FR", "SIM", "CPO")
    replicas = [f"http://127.0.0.1:{port}" for port in ports]
    servers = [
        ProcessServer(
            ["-m", "ems.cli", "serve", "--port", str(port), "--log-level", "warning"],
            env,
            f"http://127.0.0.1:{port}/healthz",
        )
        for port in ports
    ]
    workers: list[WorkerProcess] = []
    proxy_app, served = round_robin_app(replicas)
    try:
        for i, server in enumerate(servers):
            server.start(tmp_path / f"serve-{i}.log")
        workers = [WorkerProcess(env, tmp_path / f"worker-{i}.log") for i in range(2)]
        log_start = ctx.clock.now() + timedelta(minutes=6)
        log = tmp_path / "sessions.csv"
        # Twelve cars a simulated minute apart (a second of real time), each staying two hours.
        write_log(
            log,
            log_start,
            [
                (f"c{i:02d}", f"FR*INE*E{i + 1:04d}", f"T{i}", i, 120 + i, 20, 11, 3, 120 + i, 20)
                for i in range(CARS)
            ],
        )
        with (
            ThreadedServer(proxy_app, port=proxy_port),
            simulator_process(
                tmp_path,
                site=SITE,
                log=log,
                versions_url=invitation.versions_url,
                token_a=invitation.token_a,
                clock_start=clock_start,
                speed=SPEED,
                real_start_unix_s=real_start,
            ),
        ):
            yield Cluster(ctx, workers, redis, served, replicas, env, tmp_path)
    finally:
        for worker in workers:
            worker.stop()
        for server in servers:
            server.stop()
        redis.stop()
        ctx.close()


def started_sessions(ctx: EmsContext) -> set[str]:
    with ctx.db() as db:
        return set(db.scalars(select(ChargingSession.session_id)))


def profiled_sessions(ctx: EmsContext) -> set[str]:
    with ctx.db() as db:
        return set(
            db.scalars(
                select(ProfileRequest.session_id).where(
                    ProfileRequest.kind == "set", ProfileRequest.response_result == "ACCEPTED"
                )
            )
        )


def test_a_cluster_profiles_every_session_once_through_a_killed_worker_and_broker(cluster: Cluster) -> None:
    ctx = cluster.ctx
    # Mid-burst (about a third of the cars in), one worker dies as in a crash.
    wait_for(lambda: len(started_sessions(ctx)) >= 4, 120, "the first cars")
    cluster.workers[0].kill()
    wait_for(lambda: len(started_sessions(ctx)) >= 8, 60, "more cars")
    # The broker dies too, losing what it queued; the cars keep coming meanwhile.
    cluster.redis.stop()
    time.sleep(2.0)
    cluster.redis.start()

    wait_for(lambda: len(started_sessions(ctx)) == CARS, 60, "every car")
    wait_for(
        lambda: profiled_sessions(ctx) >= started_sessions(ctx),
        60,
        f"a profile for every session (missing: {started_sessions(ctx) - profiled_sessions(ctx)})",
    )

    def settled() -> bool:
        """No delivery in flight: a row being sent stays `pending` until its answer is stored."""
        with ctx.db() as db:
            return not db.scalar(
                select(func.count()).select_from(ProfileOutbox).where(ProfileOutbox.state == "pending")
            )

    wait_for(settled, 30, "the outbox to settle")
    # Both replicas took pushes, and the survivor did the planning after the kill.
    assert all(cluster.served[replica] > 10 for replica in cluster.replicas), cluster.served
    with ctx.db() as db:
        plans = db.scalar(select(func.count()).select_from(PlanRecord))
        assert plans is not None and plans >= 2
        # No profile was sent twice: one call per outbox row that was delivered, never a retry.
        calls = db.scalar(
            select(func.count()).select_from(ProfileRequest).where(ProfileRequest.kind == "set")
        )
        attempts = list(db.scalars(select(ProfileOutbox.attempts).where(ProfileOutbox.kind == "set")))
    assert calls == sum(attempts), (calls, sum(attempts))
    assert max(attempts) == 1, attempts
