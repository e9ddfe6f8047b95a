"""The simulator against the real EMS, both as processes on 127.0.0.1, sharing one ScaledClock.

EMS (`ems.cli serve`) ← CPO simulator process (OCPI back-end + OCPP central system + OCPP charge
points over real WebSockets), replaying a 3-visit log that starts at once, 600 times faster than
real time (the visits start 40 simulated minutes after the EMS is up, leaving the simulator time
to start). From the test process we then send a low limit through the EMS's own
`send_charging_profile` and watch it reach the charge point and show in the meter values.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi import profiles
from ems.store.models import ActiveProfileReport, ChargingSession, Location, ProfileRequest
from tests.support.servers import REPO, ProcessServer, free_port, wait_for
from tests.support.simulated_cpo import LOG_HEADER, SimulatorProcess, simulator_process

pytestmark = pytest.mark.e2e

SPEED = 600.0
METER_INTERVAL_S = 300.0
T = TypeVar("T")


@dataclass
class Deployment:
    ems_env: dict[str, str]
    ctx: EmsContext
    simulator: SimulatorProcess
    clock_start: datetime
    log_start: datetime

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ems.cli", *args],
            env=self.ems_env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return done.stdout


def write_three_visits(path: Path, start: datetime) -> None:
    def at(minutes: float) -> str:
        return (start + timedelta(minutes=minutes)).isoformat()

    path.write_text(
        LOG_HEADER + f"e1,FR*INE*E0001,1,TOKE1,{at(0)},{at(100)},40,11,3,{at(90)},30,20,60\n"
        f"e2,FR*INE*E0007,1,TOKE2,{at(1)},{at(40)},2.5,7.4,1,,,,\n"
        f"e3,FR*INE*E0002,1,TOKE3,{at(2)},{at(70)},30,22,3,{at(65)},10,,\n"
    )


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    ems_port = free_port()
    clock_start = datetime.now(UTC).replace(microsecond=0)
    real_start = time.time()
    ems_env = {
        "EMS_DATABASE_URL": f"sqlite:///{tmp_path / 'ems.db'}",
        "EMS_PUBLIC_URL": f"http://127.0.0.1:{ems_port}",
        "EMS_PULL_INTERVAL_S": "86400",
        "EMS_CLOCK_START": clock_start.isoformat(),
        "EMS_CLOCK_SPEED": str(SPEED),
        "EMS_CLOCK_REAL_START_UNIX_S": str(real_start),
    }
    ems = ProcessServer(
        ["-m", "ems.cli", "serve", "--port", str(ems_port)], ems_env, f"http://127.0.0.1:{ems_port}/healthz"
    )
    ems.start(tmp_path / "ems.log")
    ctx: EmsContext | None = None
    try:
        invite = subprocess.run(
            [
                sys.executable,
                "-m",
                "ems.cli",
                "partner",
                "invite",
                "--country-code",
                "FR",
                "--party-id",
                "SIM",
            ],
            env=ems.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        invitation = json.loads(invite.stdout)
        log = tmp_path / "sessions.csv"
        # The visits start 40 simulated minutes (4 s) from now: time for the simulator to start.
        log_start = clock_start + timedelta(seconds=(time.time() - real_start) * SPEED + 2400)
        write_three_visits(log, log_start)
        with simulator_process(
            tmp_path,
            site=REPO / "examples/sites/office-pv.json",
            log=log,
            versions_url=invitation["versions_url"],
            token_a=invitation["token_a"],
            clock_start=clock_start,
            speed=SPEED,
            real_start_unix_s=real_start,
            meter_interval_s=METER_INTERVAL_S,
        ) as simulator:
            settings = Settings(
                database_url=ems_env["EMS_DATABASE_URL"], public_url=ems_env["EMS_PUBLIC_URL"]
            )
            ctx = EmsContext.create(settings, migrate=False)
            yield Deployment(ems.env, ctx, simulator, clock_start, log_start)
    finally:
        if ctx is not None:
            ctx.close()
        ems.stop()


def sessions(ctx: EmsContext) -> dict[str, ChargingSession]:
    with ctx.db() as db:
        rows = db.scalars(select(ChargingSession).options(selectinload(ChargingSession.charging_periods)))
        return {row.session_id: row for row in rows}


def power_kw(period: Any) -> float:
    return float(next(d["volume"] for d in period.dimensions if d["type"] == "POWER"))


def test_simulator_registers_pushes_and_follows_a_profile_from_the_ems(deployment: Deployment) -> None:
    d = deployment
    assert (
        d.simulator.ready["event"] == "ready"
        and d.simulator.ready["party"] == "FR/SIM"
        and d.simulator.ready["visits"] == 3
    )

    partners = [json.loads(line) for line in d.cli("partner", "list").splitlines()]
    assert [(p["country_code"], p["party_id"], p["status"]) for p in partners] == [
        ("FR", "SIM", "REGISTERED")
    ]
    assert "chargingprofiles:RECEIVER" in partners[0]["endpoints"]

    with d.ctx.db() as db:
        location = db.scalars(select(Location).options(selectinload(Location.evses))).one()
        assert location.location_id == "office-pv"
        assert len(location.evses) == 12
        evse7 = next(e for e in location.evses if e.uid == "FR*INE*E0007")
        assert evse7.capabilities == ["CHARGING_PROFILE_CAPABLE", "RFID_READER"]
        assert (evse7.connectors[0].power_type, evse7.connectors[0].max_voltage) == ("AC_1_PHASE", 230)

    # Sessions PUT, then PATCHed with growing kWh and appended periods.
    seen_kwh: list[float] = []

    def e1_charging() -> ChargingSession | None:
        row = sessions(d.ctx).get("e1")
        if row is not None:
            seen_kwh.append(row.kwh)
        return row if row is not None and len(row.charging_periods) >= 2 else None

    e1 = wait_for(e1_charging, 20, "e1 to be PATCHed twice")
    assert e1.status == "ACTIVE" and e1.location_id == "office-pv" and e1.evse_uid == "FR*INE*E0001"
    assert seen_kwh == sorted(seen_kwh) and seen_kwh[-1] > 0
    assert power_kw(e1.charging_periods[-1]) == pytest.approx(11.0, abs=0.1)  # the vehicle's maximum

    # A low limit from the EMS, sent exactly as its planner would.
    outcome = profiles.send_charging_profile(
        d.ctx,
        e1.id,
        {"charging_rate_unit": "A", "charging_profile_period": [{"start_period": 0, "limit": 8.0}]},
    )
    assert outcome.response_result == "ACCEPTED" and outcome.error is None

    def result() -> str | None:
        with d.ctx.db() as db:
            row = db.scalars(
                select(ProfileRequest).where(ProfileRequest.request_id == outcome.request_id)
            ).one()
            return row.result

    assert wait_for(result, 10, "the ChargingProfileResult") == "ACCEPTED"
    state = d.simulator.state()
    applied = [a for a in state["limits_applied"] if a["session_id"] == "e1"]
    assert applied and applied[-1]["ocpp_status"] == "Accepted"
    assert any(
        e["kind"] == "profile_applied" and e["cp_id"] == "cp1" and e["limits"] == [8.0]
        for e in state["events"]
    )

    # The meter follows: 8 A x 230 V x 3 phases = 5.52 kW in the periods after the limit.
    applied_at = datetime.fromisoformat(applied[-1]["at"].replace("Z", "+00:00"))

    def limited_periods() -> list[Any] | None:
        row = sessions(d.ctx)["e1"]
        later = [p for p in row.charging_periods if p.start_date_time >= applied_at]
        return later if len(later) >= 2 else None

    later = wait_for(limited_periods, 15, "two periods under the limit")
    assert [power_kw(p) for p in later[:2]] == [pytest.approx(5.52, abs=0.05)] * 2

    # The limit in force changed through our profile: the CPO pushed its ActiveChargingProfile.
    def pushed() -> list[ActiveProfileReport] | None:
        with d.ctx.db() as db:
            query = select(ActiveProfileReport).where(ActiveProfileReport.source == "push")
            rows = list(db.scalars(query.order_by(ActiveProfileReport.id)))
            return rows or None

    report = wait_for(pushed, 10, "an ActiveChargingProfile push")[0]
    assert report.session_id == "e1"
    assert report.charging_profile["charging_profile_period"][0]["limit"] == 8.0

    # GET → GetCompositeSchedule → ActiveChargingProfileResult; DELETE → ClearChargingProfile.
    def request_result(request_id: str) -> str | None:
        with d.ctx.db() as db:
            return db.scalars(
                select(ProfileRequest.result).where(ProfileRequest.request_id == request_id)
            ).one()

    asked = profiles.request_active_profile(d.ctx, e1.id, 900)
    assert asked.response_result == "ACCEPTED"
    assert (
        wait_for(lambda: request_result(asked.request_id), 10, "the ActiveChargingProfileResult")
        == "ACCEPTED"
    )
    with d.ctx.db() as db:
        got = db.scalars(select(ActiveProfileReport).where(ActiveProfileReport.source == "get")).one()
        assert got.charging_profile["charging_profile_period"][0]["limit"] == 8.0
    cleared = profiles.clear_profile(d.ctx, e1.id)
    assert cleared.response_result == "ACCEPTED"
    assert wait_for(lambda: request_result(cleared.request_id), 10, "the ClearProfileResult") == "ACCEPTED"
    cleared_at = next(
        datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
        for e in reversed(d.simulator.state()["events"])
        if e["kind"] == "profile_cleared" and e.get("cp_id") == "cp1"
    )

    def unlimited_period() -> Any:
        row = sessions(d.ctx)["e1"]
        return next((p for p in row.charging_periods if p.start_date_time >= cleared_at), None)

    assert power_kw(wait_for(unlimited_period, 10, "a period after the clear")) == pytest.approx(
        11.0, abs=0.1
    )

    # Every visit ends COMPLETED with its end time, and the periods add up to the session's kWh.
    def all_completed() -> dict[str, ChargingSession] | None:
        rows = sessions(d.ctx)
        return rows if len(rows) == 3 and all(r.status == "COMPLETED" for r in rows.values()) else None

    final = wait_for(all_completed, 30, "all sessions COMPLETED")
    assert final["e2"].kwh == pytest.approx(2.5, abs=0.01)  # its true need, reached before departure
    for row in final.values():
        assert row.end_date_time is not None and row.end_date_time > row.start_date_time
        energy = sum(
            next(dim["volume"] for dim in p.dimensions if dim["type"] == "ENERGY")
            for p in row.charging_periods
        )
        assert energy == pytest.approx(row.kwh, abs=0.01)
    assert final["e2"].end_date_time == pytest.approx(
        d.log_start + timedelta(minutes=40), abs=timedelta(seconds=1)
    )
