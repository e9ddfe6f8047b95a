"""OCPP 1.6J between the simulator's central system and a simulated charge point, in memory.

Two `ocpp` engines joined by a fake connection (async send/recv over queues), a pinned message
id generator so frames are compared exactly, and a ManualClock so time moves only when told.
The CPO back-end is the real one (not registered with any EMS: its pushes are dropped).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ems.core.clock import ManualClock
from ems.ocpi.schemas import ChargingProfile
from examples.cpo_simulator.central_system import CentralSystem, ChargePointLink
from examples.cpo_simulator.chargepoint import SimulatedChargePoint, Vehicle
from examples.cpo_simulator.cpo import CpoBackend
from examples.cpo_simulator.simtime import SimClock
from examples.cpo_simulator.state import SimulatorState
from grid_models import Site, load_site

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


class FakeConnection:
    """What the `ocpp` engine needs of a WebSocket: async send() and recv(). Frames are kept."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str] = asyncio.Queue()
        self.peer: FakeConnection | None = None
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        assert self.peer is not None
        self.sent.append(message)
        await self.peer.inbox.put(message)

    async def recv(self) -> str:
        return await self.inbox.get()


@dataclass
class Rig:
    site: Site
    clock: ManualClock
    backend: CpoBackend
    central: CentralSystem
    cs_connection: FakeConnection
    cp: SimulatedChargePoint
    events: list[tuple[str, dict[str, Any]]]


def _ids() -> Any:
    counter = itertools.count(1)
    return lambda: f"id-{next(counter)}"


async def _rig(cp_id: str) -> tuple[Rig, list[asyncio.Task[None]]]:
    site = load_site(REPO / "examples/sites/office-pv.json")
    clock = ManualClock(T0)
    sim_clock = SimClock(clock, 1.0)
    state = SimulatorState()
    backend = CpoBackend(
        site, sim_clock, state, country_code="FR", party_id="SIM", public_url="http://127.0.0.1:1"
    )
    central = CentralSystem(backend, sim_clock)
    backend.central = central
    cs_end, cp_end = FakeConnection(), FakeConnection()
    cs_end.peer, cp_end.peer = cp_end, cs_end
    link = ChargePointLink(cp_id, cs_end, backend, sim_clock, itertools.count(1))
    link._unique_id_generator = _ids()
    central.links[cp_id] = link
    events: list[tuple[str, dict[str, Any]]] = []
    site_cp = next(c for c in site.charge_points if c.id == cp_id)
    cp = SimulatedChargePoint(
        site_cp, cp_end, site.phase_voltage_v, sim_clock, 60.0, lambda k, d: events.append((k, d))
    )
    cp._unique_id_generator = _ids()
    tasks = [asyncio.create_task(link.start()), asyncio.create_task(cp.start())]
    await cp.boot()
    return Rig(site, clock, backend, central, cs_end, cp, events), tasks


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def rig(request: pytest.FixtureRequest) -> AsyncIterator[Rig]:
    cp_id = getattr(request, "param", "cp1")
    made, tasks = await _rig(cp_id)
    yield made
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _vehicle(phases: int = 3, max_power_kw: float = 22.0, need_kwh: float = 40.0) -> Vehicle:
    return Vehicle("s1", "TOK1", max_power_kw, phases, need_kwh, T0 + timedelta(hours=8))


def _ocpi_profile(
    limit: float, unit: str = "A", start: datetime | None = None, **extra: Any
) -> ChargingProfile:
    return ChargingProfile.model_validate(
        {
            "charging_rate_unit": unit,
            "charging_profile_period": [{"start_period": 0, "limit": limit}],
            **({"start_date_time": start} if start else {}),
            **extra,
        }
    )


async def _settle(condition: Any, timeout_s: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def _last_sample(rig: Rig) -> dict[str, Any]:
    """The last MeterValues the charge point sent, as {measurand[/phase]: value}."""
    frames = [json.loads(f) for f in rig.cp._connection.sent]
    meter = [f for f in frames if f[0] == 2 and f[2] == "MeterValues"][-1]
    values = meter[3]["meterValue"][0]["sampledValue"]
    return {v["measurand"] + (f"/{v['phase']}" if "phase" in v else ""): float(v["value"]) for v in values}


async def test_a_10_a_limit_on_a_three_phase_vehicle_gives_6_9_kw(rig: Rig) -> None:
    conn = rig.cp.connectors[1]
    assert await rig.cp.plug_in(conn, _vehicle())
    assert conn.power_w == pytest.approx(22_000.0)  # the vehicle's own 22 kW (the connector gives 22.08)

    session = rig.backend.sessions["cp1-1-1"]
    answer = rig.backend.set_profile(session.id, _ocpi_profile(10.0), "http://127.0.0.1:1/cb/1")
    assert answer == {"result": "ACCEPTED", "timeout": 30}
    await _settle(lambda: rig.backend.state.limits_applied)

    assert rig.backend.state.limits_applied[-1]["ocpp_status"] == "Accepted"
    assert conn.power_w == pytest.approx(6_900.0)  # 10 A x 230 V x 3 phases
    frame = json.loads(next(f for f in rig.cs_connection.sent if '"SetChargingProfile"' in f))
    assert frame == [
        2,
        "id-1",
        "SetChargingProfile",
        {
            "connectorId": 1,
            "csChargingProfiles": {
                "chargingProfileId": 100_001,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Relative",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
                },
                "transactionId": 1,
            },
        },
    ]

    # A quarter of an hour later the meter shows it: 6.9 kW, 10 A on each grid phase.
    rig.clock.advance(900)
    rig.cp.advance(conn, rig.clock.now())
    await rig.cp.send_meter_values(conn, rig.clock.now(), "Sample.Periodic")
    sample = _last_sample(rig)
    assert sample["Power.Active.Import"] == pytest.approx(6_900.0)
    assert sample["Energy.Active.Import.Register"] == pytest.approx(1_725.0, abs=1)  # 6.9 kW x 0.25 h
    assert [sample[f"Current.Import/{p}"] for p in ("L1", "L2", "L3")] == [10.0, 10.0, 10.0]
    assert sample["Current.Offered"] == 10.0
    assert session.kwh == pytest.approx(1.725, abs=0.001)
    assert session.charging_periods[-1]["dimensions"][:3] == [
        {"type": "ENERGY", "volume": 1.725},
        {"type": "POWER", "volume": 6.9},
        {"type": "CURRENT", "volume": 10.0},
    ]


@pytest.mark.parametrize("rig", ["cp2"], indirect=True)
async def test_single_phase_vehicle_on_rotated_three_phase_connector_draws_on_its_first_grid_phase(
    rig: Rig,
) -> None:
    conn = rig.cp.connectors[1]  # cp2-1 is wired L2, L3, L1
    assert await rig.cp.plug_in(conn, _vehicle(phases=1, max_power_kw=7.4))
    await rig.central.set_charging_profile(
        "cp2", 1, rig.backend.ocpp_profile(rig.backend.sessions["cp2-1-1"], _ocpi_profile(16.0))
    )
    rig.clock.advance(60)
    rig.cp.advance(conn, rig.clock.now())
    await rig.cp.send_meter_values(conn, rig.clock.now(), "Sample.Periodic")
    sample = _last_sample(rig)
    assert sample["Power.Active.Import"] == pytest.approx(3_680.0)  # 16 A x 230 V x 1 phase
    assert (sample["Current.Import/L2"], sample["Current.Import/L3"], sample["Current.Import/L1"]) == (
        16.0,
        0.0,
        0.0,
    )
    assert rig.backend.sessions["cp2-1-1"].phases_seen == 1


async def test_absolute_profile_periods_take_effect_on_time_and_energy_is_exact(rig: Rig) -> None:
    conn = rig.cp.connectors[1]
    assert await rig.cp.plug_in(conn, _vehicle(max_power_kw=11.0))
    profile = ChargingProfile.model_validate(
        {
            "start_date_time": T0,
            "charging_rate_unit": "W",
            "charging_profile_period": [
                {"start_period": 0, "limit": 4500},
                {"start_period": 1800, "limit": 9000},
            ],
        }
    )
    ocpp_profile = rig.backend.ocpp_profile(rig.backend.sessions["cp1-1-1"], profile)
    assert ocpp_profile.charging_profile_kind == "Absolute"
    assert ocpp_profile.charging_schedule.start_schedule == "2026-06-01T08:00:00.000Z"
    assert await rig.central.set_charging_profile("cp1", 1, ocpp_profile) == "Accepted"
    assert conn.power_w == pytest.approx(4_500.0)  # 6.5 A per phase: above the 6 A minimum
    assert rig.cp.next_change(conn, rig.clock.now(), T0 + timedelta(hours=1)) == T0 + timedelta(seconds=1800)
    rig.clock.advance(1800)
    rig.cp.advance(conn, rig.clock.now())
    assert conn.power_w == pytest.approx(9_000.0)
    rig.clock.advance(1800)
    rig.cp.advance(conn, rig.clock.now())
    assert conn.meter_wh == pytest.approx(4_500 * 0.5 + 9_000 * 0.5)


async def test_below_six_amps_the_car_pauses_and_clearing_restores_full_power(rig: Rig) -> None:
    conn = rig.cp.connectors[1]
    assert await rig.cp.plug_in(conn, _vehicle(max_power_kw=11.0))
    session = rig.backend.sessions["cp1-1-1"]
    assert (
        await rig.central.set_charging_profile(
            "cp1", 1, rig.backend.ocpp_profile(session, _ocpi_profile(4.0))
        )
        == "Accepted"
    )
    assert conn.power_w == 0.0
    assert rig.cp._charging_status(conn) == "SuspendedEVSE"

    composite = await rig.central.get_composite_schedule("cp1", 1, 900, "A")
    assert composite.status == "Accepted"
    assert [
        (p["start_period"], float(p["limit"]))
        for p in composite.charging_schedule["charging_schedule_period"]
    ] == [(0, 4.0)]

    assert await rig.central.clear_charging_profile("cp1", session.profile_id) == "Accepted"
    assert conn.power_w == pytest.approx(11_000.0)
    assert await rig.central.clear_charging_profile("cp1", session.profile_id) == "Unknown"


async def test_tx_profile_without_transaction_is_rejected_and_unknown_session_answered(rig: Rig) -> None:
    session_like = type("S", (), {"phases_seen": None, "profile_id": 7, "transaction_id": 99})()
    profile = rig.backend.ocpp_profile(session_like, _ocpi_profile(10.0))
    assert await rig.central.set_charging_profile("cp1", 1, profile) == "Rejected"
    assert rig.backend.set_profile("nope", _ocpi_profile(10.0), "http://127.0.0.1:1/cb") == {
        "result": "UNKNOWN_SESSION",
        "timeout": 0,
    }


async def test_active_profile_reports_the_composite_limit_as_ocpi(rig: Rig) -> None:
    conn = rig.cp.connectors[1]
    assert await rig.cp.plug_in(conn, _vehicle())
    session = rig.backend.sessions["cp1-1-1"]
    profile = ChargingProfile.model_validate(
        {
            "charging_rate_unit": "A",
            "charging_profile_period": [
                {"start_period": 0, "limit": 16.0},
                {"start_period": 600, "limit": 8.5},
            ],
            "duration": 1200,
        }
    )
    assert (
        await rig.central.set_charging_profile("cp1", 1, rig.backend.ocpp_profile(session, profile))
        == "Accepted"
    )
    active = await rig.backend.active_profile(session, 1800)
    assert active == {
        "start_date_time": "2026-06-01T08:00:00Z",
        "charging_profile": {
            "start_date_time": "2026-06-01T08:00:00Z",
            "charging_rate_unit": "A",
            "charging_profile_period": [
                {"start_period": 0, "limit": 16.0},
                {"start_period": 600, "limit": 8.5},
                {"start_period": 1200, "limit": 32.0},  # profile over: the connector's maximum
            ],
            "duration": 1800,
        },
    }
