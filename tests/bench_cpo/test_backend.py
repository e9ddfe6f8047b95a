"""The bench's CPO over its OCPI interface (in memory): what it records of an SCSP's profiles,
what it refuses and counts, and pull mode."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from bench_cpo.backend import UNLIMITED, BenchCpo, limit_over_kw
from bench_cpo.traffic import TrafficMiddleware
from ems.core.clock import ManualClock
from ems.replay.cars import allowed_kw, placed_cars
from ems.replay.log import LoggedSession
from examples.cpo_simulator.ocpi_app import make_app
from examples.cpo_simulator.simtime import SimClock
from grid_models import load_site

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
SITE = load_site(REPO / "examples/sites/public-carpark.json")
TOKEN = "token-the-scsp-calls-us-with"
T0 = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)
BASE = "/ocpi/2.2.1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def auth() -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(TOKEN.encode()).decode()}


def car(session_id: str, evse_uid: str, minutes: int = 0) -> LoggedSession:
    return LoggedSession(
        session_id=session_id,
        evse_uid=evse_uid,
        connector_id="1",
        token_uid="TOK" + session_id,
        arrival=T0 + timedelta(minutes=minutes),
        departure=T0 + timedelta(hours=4),
        energy_kwh=10.0,
        max_power_kw=3.7,
        vehicle_phases=1,
        declared_departure=T0 + timedelta(hours=3),
    )


def cpo(mode: str = "push") -> tuple[BenchCpo, ManualClock]:
    clock = ManualClock(T0)
    backend = BenchCpo(
        SITE, SimClock(clock, 1.0), country_code="FR", party_id="BEN", public_url="http://cpo.test", mode=mode
    )
    backend.registration.incoming = TOKEN
    backend.registration.status = "REGISTERED"
    return backend, clock


@pytest.fixture
async def bench() -> AsyncIterator[tuple[BenchCpo, ManualClock, httpx.AsyncClient]]:
    backend, clock = cpo()
    backend.car_arrived(car("s1", "ES*BCN*E0001"), "cp1-1", T0)
    app = make_app(backend)
    app.add_middleware(TrafficMiddleware, ledger=backend.ledger)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cpo.test") as http:
        yield backend, clock, http


def set_profile(limit: float, start: str | None = None, duration: int | None = None) -> dict[str, object]:
    profile: dict[str, object] = {
        "charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": limit}],
    }
    if start:
        profile["start_date_time"] = start
    if duration is not None:
        profile["duration"] = duration
    return {"charging_profile": profile, "response_url": "http://scsp.test/cb/1"}


async def test_a_profile_is_the_car_s_limit_from_when_it_came(
    bench: tuple[BenchCpo, ManualClock, httpx.AsyncClient],
) -> None:
    backend, clock, http = bench
    clock.set(T0 + timedelta(minutes=2))
    answer = await http.put(f"{BASE}/chargingprofiles/s1", json=set_profile(10.0), headers=auth())
    assert answer.json()["data"] == {"result": "ACCEPTED", "timeout": 30}
    assert backend.profile_in_force("s1", T0 + timedelta(minutes=1)) is None
    profile = backend.profile_in_force("s1", T0 + timedelta(minutes=2))
    assert profile is not None
    # Relative (no start): anchored at the session start; 10 A on the one phase the car draws.
    assert profile["start_date_time"] == "2026-06-02T08:00:00Z"
    cars = placed_cars(SITE, [car("s1", "ES*BCN*E0001")], 900)[2]
    assert allowed_kw(cars[0], profile, T0, T0 + timedelta(minutes=15), 230.0) == pytest.approx(2.3)
    assert backend.ledger.accepted[0].at == T0 + timedelta(minutes=2)


async def test_after_its_duration_a_profile_limits_nothing(
    bench: tuple[BenchCpo, ManualClock, httpx.AsyncClient],
) -> None:
    backend, _clock, http = bench
    body = set_profile(6.0, start="2026-06-02T08:00:00Z", duration=900)
    assert (await http.put(f"{BASE}/chargingprofiles/s1", json=body, headers=auth())).status_code == 200
    profile = backend.profile_in_force("s1", T0)
    assert profile is not None
    assert profile["charging_profile_period"][-1] == {"start_period": 900, "limit": UNLIMITED}
    cars = placed_cars(SITE, [car("s1", "ES*BCN*E0001")], 900)[2]
    later = T0 + timedelta(minutes=15)
    assert allowed_kw(cars[0], profile, later, later + timedelta(minutes=15), 230.0) == cars[0].pmax_kw


async def test_a_profile_starting_inside_a_step_leaves_the_one_before_it_until_then(
    bench: tuple[BenchCpo, ManualClock, httpx.AsyncClient],
) -> None:
    """10 A from 8:00; a plan at 8:05 cuts the car to 0 from 8:05. Over the step from 8:00 the
    car drew 10 A for five minutes, as a charge point applies it and as the SCSP will read the
    meter values: not 0 A from 8:00. The first profile, come within the response window, holds
    from the step's start (an answer to the step's events); one that came later holds from its
    start, but not from earlier than the window before it came; a DELETE clears them all."""
    backend, clock, http = bench
    put = f"{BASE}/chargingprofiles/s1"
    step = (T0, T0 + timedelta(minutes=15))
    [parked] = placed_cars(SITE, [car("s1", "ES*BCN*E0001")], 900)[2]

    def limit_kw(at: datetime, window_s: float = 300.0) -> float:
        return limit_over_kw(parked, backend.profiles_in_force("s1", at), *step, 230.0, window_s)

    clock.set(T0 + timedelta(minutes=1))
    body = set_profile(10.0, start="2026-06-02T08:01:00Z")
    assert (await http.put(put, json=body, headers=auth())).is_success
    assert limit_kw(step[1]) == pytest.approx(2.3)  # from 8:00: it answered in time
    assert limit_kw(step[1], window_s=30.0) == pytest.approx(parked.pmax_kw / 15 + 2.3 * 14 / 15)
    clock.set(T0 + timedelta(minutes=5))
    body = set_profile(0.0, start="2026-06-02T08:05:00Z")
    assert (await http.put(put, json=body, headers=auth())).is_success
    assert len(backend.profiles_in_force("s1", step[1])) == 2
    assert backend.profile_in_force("s1", step[1]) == backend.profiles_in_force("s1", step[1])[-1].profile
    assert limit_kw(step[1]) == pytest.approx(2.3 * 5 / 15)
    assert limit_kw(T0 + timedelta(minutes=4)) == pytest.approx(2.3)  # what had come by 8:04
    # sent at 8:12 for 8:05: it holds from 8:07, the window (5 min) before it came
    clock.set(T0 + timedelta(minutes=12))
    body = set_profile(16.0, start="2026-06-02T08:05:00Z")
    assert (await http.put(put, json=body, headers=auth())).is_success
    assert limit_kw(step[1]) == pytest.approx((2.3 * 5 + 0.0 * 2 + 3.68 * 8) / 15)
    clock.set(T0 + timedelta(minutes=13))
    cleared = await http.delete(put, params={"response_url": "http://scsp.test/cb/2"}, headers=auth())
    assert cleared.json()["data"]["result"] == "ACCEPTED"
    assert backend.profiles_in_force("s1", step[1]) == []
    assert limit_kw(step[1]) == parked.pmax_kw


async def test_garbage_unknown_sessions_and_wrong_tokens_are_counted(
    bench: tuple[BenchCpo, ManualClock, httpx.AsyncClient],
) -> None:
    backend, _clock, http = bench
    ledger = backend.ledger
    unknown = await http.put(f"{BASE}/chargingprofiles/nobody", json=set_profile(10.0), headers=auth())
    assert unknown.json()["data"]["result"] == "UNKNOWN_SESSION"
    not_json = await http.put(
        f"{BASE}/chargingprofiles/s1",
        content=b"{not json",
        headers={**auth(), "Content-Type": "application/json"},
    )
    assert not_json.status_code == 400
    bad_start = set_profile(10.0)
    bad_start["charging_profile"]["charging_profile_period"][0]["start_period"] = 60  # type: ignore[index]
    assert (await http.put(f"{BASE}/chargingprofiles/s1", json=bad_start, headers=auth())).json()[
        "status_code"
    ] == 2001
    assert (await http.put(f"{BASE}/chargingprofiles/s1", json=set_profile(10.0))).status_code == 401
    assert ledger.unknown_session_puts == 1
    assert ledger.malformed_profiles == 2
    assert sum(ledger.error_answers.values()) == 3
    assert ledger.error_answers["PUT chargingprofiles HTTP 401 OCPI 2000"] == 1
    assert not ledger.accepted and ledger.requests == 4


class RecordingEms:
    """Stands in for the EMS client: the pushes the CPO made, as (method, the URL's last two parts)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def request(self, method: str, url: str, **_: object) -> SimpleNamespace:
        self.calls.append((method, "/".join(url.split("/")[-2:])))
        return SimpleNamespace(data=None)


async def test_pulling_the_sessions_wait_on_the_sender_and_preferences_follow_the_pull() -> None:
    backend, _clock = cpo(mode="pull")
    backend.registration.endpoints = [
        {"identifier": "sessions", "role": "RECEIVER", "url": "http://scsp.test/sessions"}
    ]
    pushed = RecordingEms()
    backend.ems = pushed  # type: ignore[assignment]  # registered: pushes go out
    for i, evse in enumerate(("ES*BCN*E0001", "ES*BCN*E0002", "ES*BCN*E0003"), start=1):
        backend.car_arrived(car(f"s{i}", evse, minutes=i), f"cp{i}-1", T0 + timedelta(minutes=i))
    await backend.drain()
    assert pushed.calls == []  # no Session PUT, no preferences yet
    app = make_app(backend)
    app.add_middleware(TrafficMiddleware, ledger=backend.ledger)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://cpo.test") as http:
        first = await http.get(
            f"{BASE}/sessions", params={"date_from": "2026-01-01T00:00:00Z", "limit": 2}, headers=auth()
        )
        assert [s["id"] for s in first.json()["data"]] == ["s1", "s2"]
        assert first.headers["X-Total-Count"] == "3" and 'rel="next"' in first.headers["Link"]
        backend.send_due_preferences()
        await backend.drain()
        assert pushed.calls == [("PUT", f"s{i}/charging_preferences") for i in (1, 2)]  # the two pulled
        nxt = first.headers["Link"].split(";")[0].strip("<>").replace("http://cpo.test", "")
        second = await http.get(nxt, headers=auth())
        assert [s["id"] for s in second.json()["data"]] == ["s3"]
    backend.send_due_preferences()
    await backend.drain()
    assert pushed.calls[2:] == [("PUT", "s3/charging_preferences")]
