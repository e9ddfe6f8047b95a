"""The whole simulated CPO in one asyncio process: OCPI back-end, OCPP central system, charge points.

    sim = Simulator(config)
    await sim.start()          # servers up, charge points booted, registered, Location pushed
    await sim.wait_done()      # every logged visit replayed (or: await sim.stop() any time)
    sim.state.snapshot()       # sessions, limits applied, meter values, events

The charge points are real OCPP 1.6J clients connected over WebSockets on 127.0.0.1 to the
central system; the EMS talks to the back-end over real HTTP. Time is a `ScaledClock` that the
EMS can share (same `clock_start`, `speed`, `real_start_unix_s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import uvicorn
from websockets.asyncio.client import ClientConnection, connect

from ems.core.clock import ScaledClock
from grid_models import Site, load_site

from .arrivals import Arrival, Schedule, read_session_log, schedule, shift_to_day
from .central_system import OCPP16, CentralSystem
from .chargepoint import SimulatedChargePoint, Vehicle
from .cpo import CpoBackend
from .ocpi_app import make_app
from .ocpi_client import EmsClient, new_token
from .simtime import SimClock
from .state import SimulatorState

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatorConfig:
    site_path: Path
    sessions_path: Path
    port: int
    ocpp_port: int
    ems_versions_url: str | None = None
    """With `token_a`: we register with the EMS. Without: we hand out a token A and wait."""
    token_a: str | None = None
    clock_start: datetime | None = None
    """Simulated time at `real_start_unix_s`; None means now."""
    speed: float = 60.0
    real_start_unix_s: float | None = None
    today: bool = False
    """Shift the log by whole days so its first day is the clock's day (site time zone)."""
    country_code: str = "FR"
    party_id: str = "SIM"
    meter_interval_s: float = 60.0
    host: str = "127.0.0.1"
    business_name: str = "CPO simulator"
    http_timeout_s: float = 10.0


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside our loop: signals are ours (it would otherwise take SIGINT/SIGTERM over)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Simulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.site: Site = load_site(config.site_path)
        start = config.clock_start or datetime.now(UTC)
        real_start = config.real_start_unix_s if config.real_start_unix_s is not None else time.time()
        self.clock = SimClock(ScaledClock(start, config.speed, real_start), config.speed)
        arrivals = read_session_log(config.sessions_path, self.site)
        if config.today:
            zone = ZoneInfo(self.site.timezone)
            arrivals = shift_to_day(arrivals, self.clock.now().astimezone(zone).date(), zone)
        self.schedule: Schedule = schedule(arrivals, self.clock.now())
        self.state = SimulatorState()
        for session_id, why in self.schedule.skipped:
            self.state.event("arrival_skipped", {"session_id": session_id, "why": why})
        self.public_url = f"http://{config.host}:{config.port}"
        self.backend = CpoBackend(
            self.site,
            self.clock,
            self.state,
            country_code=config.country_code,
            party_id=config.party_id,
            public_url=self.public_url,
            business_name=config.business_name,
        )
        self.central = CentralSystem(self.backend, self.clock, config.host, config.ocpp_port)
        self.backend.central = self.central
        self.charge_points: dict[str, SimulatedChargePoint] = {}
        self._connections: list[ClientConnection] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._visits: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self._server: uvicorn.Server | None = None

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self, on_invitation: Callable[[str, str], None] | None = None) -> None:
        """Servers, charge points, registration, Location; then the arrivals run on their own.

        Without `ems_versions_url`/`token_a` a token A is made and passed to `on_invitation`
        (token, our versions URL), and start() returns once the EMS registered with it.
        """
        config = self.config
        self._http = httpx.AsyncClient(timeout=config.http_timeout_s)
        self.backend.ems = EmsClient(
            self._http, self.backend.country_code, self.backend.party_id, self.backend.registration
        )
        self._tasks.append(asyncio.create_task(self.backend.outbox_worker(), name="ocpi-outbox"))
        await self._start_http()
        await self.central.start()
        await self._connect_charge_points()
        if config.ems_versions_url and config.token_a:
            await self.backend.register_with_ems(config.ems_versions_url, config.token_a)
        else:
            token_a = new_token()
            self.backend.registration.token_a = token_a
            if on_invitation is not None:
                on_invitation(token_a, self.backend.versions_url)
            while self.backend.registration.status != "REGISTERED":
                await asyncio.sleep(0.1)
        self._tasks.append(asyncio.create_task(self._arrivals(), name="arrivals"))

    async def _start_http(self) -> None:
        app = make_app(self.backend)
        server_config = uvicorn.Config(
            app, host=self.config.host, port=self.config.port, log_level="warning", lifespan="off"
        )
        self._server = _EmbeddedServer(server_config)
        self._tasks.append(asyncio.create_task(self._server.serve(), name="ocpi-http"))
        while not self._server.started:
            if self._tasks[-1].done():
                self._tasks[-1].result()  # raises what stopped it (port in use, …)
                raise RuntimeError("the OCPI server stopped before starting")
            await asyncio.sleep(0.02)

    async def _connect_charge_points(self) -> None:
        for site_cp in self.site.charge_points:
            connection = await connect(f"{self.central.url}/{site_cp.id}", subprotocols=[OCPP16])
            self._connections.append(connection)
            cp = SimulatedChargePoint(
                site_cp,
                connection,
                self.site.phase_voltage_v,
                self.clock,
                self.config.meter_interval_s,
                events=self.state.event,
            )
            self.charge_points[site_cp.id] = cp
            self._tasks.append(asyncio.create_task(cp.serve(), name=f"ocpp-{site_cp.id}"))
            await cp.boot()
            self._tasks.append(asyncio.create_task(cp.heartbeats(), name=f"heartbeat-{site_cp.id}"))

    async def _arrivals(self) -> None:
        for arrival in self.schedule.arrivals:
            await self.clock.sleep_until(arrival.arrival)
            self._visits.append(asyncio.create_task(self._visit(arrival), name=f"visit-{arrival.session_id}"))
        if self._visits:
            await asyncio.gather(*self._visits, return_exceptions=True)
        await self.backend.drain()
        self.state.event("all_visits_done", {})

    async def _visit(self, arrival: Arrival) -> None:
        for cp in self.charge_points.values():
            conn = cp.connector_for(arrival.evse_uid, arrival.connector_id)
            if conn is None:
                continue
            self.backend.expect(cp.id, conn.number, arrival)
            vehicle = Vehicle(
                session_id=arrival.session_id,
                token_uid=arrival.token_uid,
                max_power_kw=arrival.max_power_kw,
                phases=arrival.vehicle_phases,
                energy_need_kwh=arrival.energy_kwh,
                departure=arrival.departure,
                capacity_kwh=arrival.battery_capacity_kwh,
                soc_arrival_pct=arrival.soc_arrival_pct,
            )
            try:
                await cp.visit(conn, vehicle)
            except Exception as exc:  # one visit failing must not stop the others
                LOG.exception("visit %s failed", arrival.session_id)
                self.state.event("visit_failed", {"session_id": arrival.session_id, "why": repr(exc)})
            return

    @property
    def done(self) -> bool:
        return self.state.counters["all_visits_done"] > 0

    async def wait_done(self, timeout_s: float | None = None) -> None:
        arrivals = next((t for t in self._tasks if t.get_name() == "arrivals"), None)
        if arrivals is not None:
            await asyncio.wait_for(asyncio.shield(arrivals), timeout_s)

    async def stop(self) -> None:
        """Stop everything; open transactions are simply abandoned (no StopTransaction)."""
        for task in [*self._visits, *self._tasks]:
            if task.get_name() != "ocpi-http":
                task.cancel()
        for connection in self._connections:
            with contextlib.suppress(Exception):
                await connection.close()
        await self.central.stop()
        if self._server is not None:
            self._server.should_exit = True
        await asyncio.gather(*self._visits, *self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()


async def run_simulator(
    config: SimulatorConfig,
    *,
    stop: asyncio.Event | None = None,
    exit_when_done: bool = False,
    on_ready: Callable[[Simulator], None] | None = None,
    on_invitation: Callable[[str, str], None] | None = None,
) -> Simulator:
    """Run until `stop` is set (or, with `exit_when_done`, until every visit was replayed).

    Returns the stopped Simulator, whose `state` holds what happened.
    """
    simulator = Simulator(config)
    stop = stop or asyncio.Event()
    try:
        # A stop while starting (waiting for the EMS to register, say) ends the start too.
        starting = asyncio.create_task(simulator.start(on_invitation=on_invitation))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await starting
            return simulator
        stopping.cancel()
        starting.result()  # raises what stopped the start
        if on_ready is not None:
            on_ready(simulator)
        waiters: list[asyncio.Future[Any]] = [asyncio.create_task(stop.wait())]
        if exit_when_done:
            waiters.append(asyncio.create_task(simulator.wait_done()))
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
    finally:
        await simulator.stop()
    return simulator
