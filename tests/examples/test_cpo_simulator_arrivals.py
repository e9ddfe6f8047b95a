"""The session log as the simulator replays it, and the EMS registering with the simulator."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from ems.ocpi.partners import register_with
from ems.store.models import ChargingPreference, ChargingSession, Location
from examples.cpo_simulator import SimulatorConfig, run_simulator
from examples.cpo_simulator.arrivals import SessionLogError, read_session_log, schedule, shift_to_day
from grid_models import load_site
from tests.support.servers import free_port

if TYPE_CHECKING:  # the `ems` fixture (tests/conftest.py): the EMS app served from a thread
    from tests.conftest import RunningEms

REPO = Path(__file__).resolve().parents[2]
SITE = REPO / "examples/sites/office-pv.json"
OFFICE_DAY = REPO / "examples/cpo_simulator/office_day.csv"
PARIS = ZoneInfo("Europe/Paris")
HEADER = (
    "session_id,evse_uid,connector_id,token_uid,arrival,departure,energy_kwh,max_power_kw,vehicle_phases\n"
)


def test_office_day_is_a_valid_realistic_day() -> None:
    arrivals = read_session_log(OFFICE_DAY, load_site(SITE))
    assert len(arrivals) == 12
    assert {a.vehicle_phases for a in arrivals} == {1, 3}
    assert (
        min(a.max_power_kw or 0 for a in arrivals) == 3.7 and max(a.max_power_kw or 0 for a in arrivals) == 22
    )
    local = [(a.arrival.astimezone(PARIS), a.departure.astimezone(PARIS)) for a in arrivals]
    assert all(start.date() == date(2026, 6, 1) for start, _ in local)
    assert min(start for start, _ in local).strftime("%H:%M") >= "08:00"
    assert max(end for _, end in local).strftime("%H:%M") <= "18:30"
    assert sum(a.declared_departure is not None for a in arrivals) >= 6


def test_today_keeps_local_wall_clock_times_across_a_dst_change() -> None:
    arrivals = read_session_log(OFFICE_DAY, load_site(SITE))
    shifted = shift_to_day(arrivals, date(2026, 11, 22), PARIS)
    first = next(a for a in shifted if a.session_id == "s01")
    assert first.arrival.astimezone(PARIS).isoformat() == "2026-11-22T08:02:00+01:00"
    assert first.declared_departure is not None
    assert first.declared_departure.astimezone(PARIS).isoformat() == "2026-11-22T17:30:00+01:00"


def test_visits_before_the_clock_start_are_skipped_or_shifted() -> None:
    arrivals = read_session_log(OFFICE_DAY, load_site(SITE))
    start = datetime(2026, 6, 1, 12, 10, tzinfo=PARIS)
    plan = schedule(arrivals, start)
    assert plan.skipped == (("s02", "departed before the clock start"),)
    by_id = {a.session_id: a for a in plan.arrivals}
    assert by_id["s01"].arrival == start  # plugged in since 08:02: joins at the clock start
    assert by_id["s11"].arrival.astimezone(PARIS).strftime("%H:%M") == "13:15"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            "a,FR*INE*E0001,1,T,2026-06-01T08:00:00+02:00,2026-06-01T12:00:00+02:00,5,7,3\n"
            "b,FR*INE*E0001,1,T,2026-06-01T11:00:00+02:00,2026-06-01T13:00:00+02:00,5,7,3\n",
            "sessions a and b overlap on FR*INE*E0001/1",
        ),
        ("a,FR*INE*E0099,1,T,2026-06-01T08:00:00+02:00,2026-06-01T12:00:00+02:00,5,7,3\n", "no connector"),
        (
            "a,FR*INE*E0001,1,T,2026-06-01T08:00:00+02:00,2026-06-01T07:00:00+02:00,5,7,3\n",
            "before the arrival",
        ),
        ("a,FR*INE*E0001,1,T,2026-06-01T08:00:00+02:00,2026-06-01T09:00:00+02:00,5,7,2\n", "must be 1 or 3"),
    ],
)
def test_a_bad_log_is_refused_naming_the_problem(tmp_path: Path, rows: str, message: str) -> None:
    log = tmp_path / "bad.csv"
    log.write_text(HEADER + rows)
    with pytest.raises(SessionLogError, match=re.escape(message)):
        read_session_log(log, load_site(SITE))


def test_the_ems_can_register_with_the_simulator(ems: RunningEms, tmp_path: Path) -> None:
    """The other way round: we hand out a token A, the EMS initiates (`ems partner register`)."""
    now = datetime.now(UTC).replace(microsecond=0)
    log = tmp_path / "one.csv"
    arrival, departure = now + timedelta(minutes=20), now + timedelta(minutes=50)
    log.write_text(
        HEADER.rstrip("\n") + ",declared_departure,declared_energy_kwh\n"
        f"v1,FR*INE*E0010,1,TOKV,{arrival.isoformat()},{departure.isoformat()},1.5,3.7,1,"
        f"{(departure - timedelta(minutes=5)).isoformat()},4\n"
    )
    port = free_port()
    config = SimulatorConfig(
        site_path=SITE,
        sessions_path=log,
        port=port,
        ocpp_port=free_port(),
        clock_start=now,
        speed=600.0,
        meter_interval_s=300.0,
    )
    invitation: list[tuple[str, str]] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        await run_simulator(config, stop=stop, on_invitation=lambda t, u: invitation.append((t, u)))

    runner = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 20
        while not invitation:
            assert time.monotonic() < deadline, "no invitation"
            time.sleep(0.05)
        token_a, versions_url = invitation[0]
        assert versions_url == f"http://127.0.0.1:{port}/ocpi/versions"
        partner = register_with(ems.ctx, versions_url, token_a)
        assert (partner.status, partner.country_code, partner.party_id) == ("REGISTERED", "FR", "SIM")

        def completed() -> ChargingSession | None:
            with ems.ctx.db() as db:
                row = db.scalars(
                    select(ChargingSession).where(ChargingSession.session_id == "v1")
                ).one_or_none()
                return row if row is not None and row.status == "COMPLETED" else None

        while completed() is None:
            assert time.monotonic() < deadline + 20, "v1 never completed"
            time.sleep(0.1)
        session = completed()
        assert session is not None and session.kwh == pytest.approx(1.5, abs=0.01)
        with ems.ctx.db() as db:
            assert db.scalars(select(Location.location_id)).one() == "office-pv"
            preference = db.scalars(select(ChargingPreference)).one()
            assert preference.energy_need_kwh == 4 and preference.source == "ocpi"
    finally:
        loop.call_soon_threadsafe(stop.set)
        runner.join(timeout=15)
