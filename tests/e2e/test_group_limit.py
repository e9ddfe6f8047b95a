"""The show of issue #19 with real processes on 127.0.0.1: a grid operator lowers the limit of a
group of two sites, and every car of both sites gets a new profile within 2 s of the PUT.

EMS (`ems serve`) ← two CPO simulator processes (FR/SIM runs the office, FR/SI2 the public car
park; OCPI back-end, OCPP central system and charge points each), on one shared fast clock. Two
cars charge at each site; `PUT /api/admin/groups/campus/limits` sets a DSO limit valid from now
for two hours (the 17:00 of the show: the clock's time is not what matters); each session's new
profile is sent within 2 s of real time, and the meter values the charge points report, summed
over every session of both sites, stay under the limit once the profiles arrived (one meter
interval allowed to settle).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ems import sites
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi.datetimes import format_ocpi_datetime, parse_ocpi_datetime
from ems.ocpi.partners import invite
from ems.sites.groups import put_group
from ems.store.models import ProfileRequest
from ems.store.planning import PlanRecord
from tests.support.servers import REPO, ProcessServer, free_port, wait_for
from tests.support.simulated_cpo import SimulatorProcess, simulator_process, write_log

pytestmark = pytest.mark.e2e

SPEED = 60.0
METER_INTERVAL_S = 60.0
ADMIN_TOKEN = "admin-token-for-the-group-show"
LIMIT_KW = 10.0
SITES = {
    "office-pv": (REPO / "examples" / "sites" / "office-pv.json", "SIM"),
    "public-carpark": (REPO / "examples" / "sites" / "public-carpark.json", "SI2"),
}
# (id, evse, token, arrival min, departure min, kWh, max kW, phases, declared departure, declared kWh):
# every car wants more than it can get in its stay, so a lower limit cuts each of them.
CARS = {
    "office-pv": [
        ("o1", "FR*INE*E0001", "T1", 1, 240, 60, 22, 3, 240, 60),
        ("o2", "FR*INE*E0002", "T2", 2, 240, 60, 22, 3, 240, 60),
    ],
    "public-carpark": [
        ("c1", "ES*BCN*E0001", "T3", 1, 240, 20, 3.7, 1, 240, 20),
        ("c2", "ES*BCN*E0002", "T4", 2, 240, 20, 3.7, 1, 240, 20),
    ],
}
SESSION_IDS = [car[0] for cars in CARS.values() for car in cars]


@dataclass
class Show:
    ctx: EmsContext
    ems_url: str
    simulators: list[SimulatorProcess]


@pytest.fixture
def show(tmp_path: Path) -> Iterator[Show]:
    port = free_port()
    clock_start = datetime.now(UTC).replace(microsecond=0)
    real_start = time.time()
    env = {
        "EMS_DATABASE_URL": f"sqlite:///{tmp_path / 'ems.db'}",
        "EMS_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "EMS_CLOCK_START": clock_start.isoformat(),
        "EMS_CLOCK_SPEED": str(SPEED),
        "EMS_CLOCK_REAL_START_UNIX_S": str(real_start),
        "EMS_PLAN_INTERVAL_S": "3600",
        "EMS_ADMIN_TOKEN": ADMIN_TOKEN,
    }
    ctx = EmsContext.create(Settings(**{k.removeprefix("EMS_").lower(): v for k, v in env.items()}))  # type: ignore[arg-type]
    invitations = {}
    for site_id, (path, party_id) in SITES.items():
        sites.import_site(ctx, json.loads(path.read_text()))
        invitations[site_id] = invite(ctx, "FR", party_id, "CPO")
    put_group(ctx, "campus", {"id": "campus", "name": "Office and car park", "sites": list(SITES)})
    ems = ProcessServer(
        ["-m", "ems.cli", "serve", "--port", str(port), "--log-level", "warning"],
        env,
        f"http://127.0.0.1:{port}/healthz",
    )
    ems.start(tmp_path / "ems.log")
    try:
        log_start = ctx.clock.now() + timedelta(minutes=8)  # time for the simulators to boot
        with ExitStack() as stack:
            simulators = []
            for site_id, (path, party_id) in SITES.items():
                log = tmp_path / f"sessions-{site_id}.csv"
                write_log(log, log_start, CARS[site_id])
                simulators.append(
                    stack.enter_context(
                        simulator_process(
                            tmp_path,
                            site=path,
                            log=log,
                            versions_url=invitations[site_id].versions_url,
                            token_a=invitations[site_id].token_a,
                            clock_start=clock_start,
                            speed=SPEED,
                            real_start_unix_s=real_start,
                            meter_interval_s=METER_INTERVAL_S,
                            party_id=party_id,
                        )
                    )
                )
            yield Show(ctx, f"http://127.0.0.1:{port}", simulators)
    finally:
        ems.stop()
        ctx.close()


def profiles_sent(ctx: EmsContext, session_id: str) -> list[ProfileRequest]:
    """PUTs of a profile the CPO has answered."""
    with ctx.db() as db:
        return list(
            db.scalars(
                select(ProfileRequest)
                .where(
                    ProfileRequest.session_id == session_id,
                    ProfileRequest.kind == "set",
                    ProfileRequest.http_status.is_not(None),
                )
                .order_by(ProfileRequest.id)
            )
        )


def test_a_lowered_dso_limit_reaches_every_car_of_the_group(show: Show) -> None:
    ctx = show.ctx
    for sid in SESSION_IDS:
        wait_for(lambda sid=sid: profiles_sent(ctx, sid), 90, f"a first profile for {sid}")
    time.sleep(2.0)  # the plans of the last arrivals settle

    at_put = ctx.clock.now()
    limit = {
        "id": "dso-evening",
        "source": "dso",
        "max_import_kw": LIMIT_KW,
        "valid_from": format_ocpi_datetime(at_put - timedelta(minutes=1)),
        "valid_until": format_ocpi_datetime(at_put + timedelta(hours=2)),
    }
    reply = httpx.put(
        f"{show.ems_url}/api/admin/groups/campus/limits",
        json=limit,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert reply.status_code == 201, reply.text

    def resent() -> dict[str, ProfileRequest] | None:
        after = {
            sid: [p for p in profiles_sent(ctx, sid) if p.sent_at and p.sent_at > at_put]
            for sid in SESSION_IDS
        }
        return {sid: sent[0] for sid, sent in after.items()} if all(after.values()) else None

    first_after = wait_for(resent, 30, "a new profile for every session after the PUT")
    delays_real_s = {sid: (p.sent_at - at_put).total_seconds() / SPEED for sid, p in first_after.items()}
    print("profile re-sent after the PUT, real s:", {k: round(v, 2) for k, v in delays_real_s.items()})
    assert all(delay < 2.0 for delay in delays_real_s.values()), delays_real_s
    assert all(p.response_result == "ACCEPTED" for p in first_after.values())

    with ctx.db() as db:
        plans = list(db.scalars(select(PlanRecord).where(PlanRecord.planned_for >= at_put)))
    kept = {
        p.site_id for p in plans if "dso-evening" in (p.result.get("group_limits") or {}).get("sources", {})
    }
    assert kept == set(SITES)

    # Meter values follow: once the profiles are at the charge points and one meter interval
    # has passed, what every session of both sites draws sums under the limit.
    arrived = max(p.sent_at for p in first_after.values())
    settled = arrived + timedelta(seconds=2 * METER_INTERVAL_S)
    window_end = settled + timedelta(minutes=4)
    wait_for(lambda: ctx.clock.now() > window_end + timedelta(seconds=METER_INTERVAL_S), 30, "meter values")
    samples: dict[str, list[float]] = {sid: [] for sid in SESSION_IDS}
    before: dict[str, list[float]] = {sid: [] for sid in SESSION_IDS}
    for simulator in show.simulators:
        for mv in simulator.state()["meter_values"]:
            at = parse_ocpi_datetime(mv["at"])
            if mv["session_id"] not in samples or mv["power_w"] is None:
                continue
            if settled <= at <= window_end:
                samples[mv["session_id"]].append(mv["power_w"] / 1000.0)
            elif at_put - timedelta(minutes=2) <= at < at_put:
                before[mv["session_id"]].append(mv["power_w"] / 1000.0)
    drawn_before_kw = sum(min(values, default=0.0) for values in before.values())
    print("lowest meter power of each session summed before the PUT:", round(drawn_before_kw, 2), "kW")
    assert drawn_before_kw > LIMIT_KW, before  # the limit is a real cut, not one already kept
    assert all(samples.values()), samples
    worst_kw = sum(max(values) for values in samples.values())
    print("highest meter power of each session summed:", round(worst_kw, 2), "kW under", LIMIT_KW)
    assert worst_kw <= LIMIT_KW * 1.01, samples
    assert worst_kw > 0.5 * LIMIT_KW, samples  # the cars still charge: the limit is used, not dropped to 0
