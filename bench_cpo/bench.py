"""The bench: one session log played as a CPO towards several SCSPs at once, in simulated time.

Every SCSP gets its own CPO (`bench_cpo.backend.BenchCpo`, on its own port) and its own copy of
the cars, and sees the same thing at the same simulated instants: registration, the Location,
then, at each step boundary, a meter reading of every car plugged in, the sessions that ended
(last meter reading, COMPLETED) and the ones that started (Session, then the driver's declared
departure and energy as charging preferences), each session's pushes in order and different
sessions' side by side. In pull mode the Sessions wait on the CPO's SENDER interface instead.

Time is the replay's (`ems replay`): steps of `step_s` aligned in the site's time zone over whole
local days; an event inside a step is pushed at the next boundary; a car draws only in whole
steps it is plugged in for, what the profiles in force let it over the step
(`bench_cpo.backend.limit_over_kw`, `ems.replay.cars.draw`), up to its true energy and power.
Those are the profiles that reached the bench by the step's end, each from its own start (the
one before it holds until then). `response_window_s` is an SCSP's grace: a session's first
profile that came within it of t_k holds from t_k, as the replay's planner answers a
boundary's events at the boundary (at 600x, a real quarter second of an SCSP's latency is 150
simulated seconds: counted from their arrival, profiles would measure the acceleration, not
the SCSP), and no profile holds from earlier than the window before it came; a session's
first profile later than that is scored late. Only the steps from the first arrival to the
last departure run in real time; the empty hours around them are empty for every SCSP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import uvicorn

from bench_cpo.backend import BenchCpo, limit_over_kw
from bench_cpo.scsp import ScspSpec, SharedClock, StartedEms, free_port
from bench_cpo.traffic import TrafficMiddleware
from ems.core.clock import ScaledClock
from ems.replay.cars import Car, count_setpoint_change, draw, placed_cars, step_index
from ems.replay.log import LoggedSession
from ems.replay.result import ReplayConfig, ReplayResult, measured_result
from ems.replay.series import actual_steps
from ems.sites.series import Series
from examples.cpo_simulator.ocpi_app import make_app
from examples.cpo_simulator.ocpi_client import EmsClient, OcpiCallError
from examples.cpo_simulator.simtime import SimClock
from grid_models import Site

LOG = logging.getLogger(__name__)


class BenchError(ValueError):
    """A bench that cannot run as asked (its own input or set-up, never an SCSP's behaviour)."""


@dataclass(frozen=True)
class BenchConfig:
    site_path: Path
    site: Site
    sessions: tuple[LoggedSession, ...]
    scsps: tuple[ScspSpec, ...]
    workdir: Path
    series_path: Path | None = None
    series: Series | None = None
    mode: str = "push"
    speed: float = 600.0
    """Simulated seconds per real second; 1 runs on real time (vendors' SCSPs on their own clock)."""
    step_s: int = 900
    response_window_s: float = 300.0
    """Simulated seconds an SCSP has to answer a boundary's events for its profile to count from
    that boundary; a session's first profile later than this is late."""
    plan_interval_s: float = 3600.0
    """Started SCSPs re-plan this often without events (simulated s), as `ems replay --replan-min 60`."""
    setup_s: float = 15.0
    """Real seconds for starting the SCSPs' servers and registering, before the first step."""
    http_timeout_s: float = 5.0
    host: str = "127.0.0.1"
    country_code: str = "FR"
    party_id: str = "BEN"


@dataclass
class ScspRun:
    """One SCSP on the bench: its CPO, its cars, what they drew."""

    spec: ScspSpec
    backend: BenchCpo
    cars: list[Car]
    power_kw: dict[tuple[int, int], float] = field(default_factory=dict)
    energy_kwh: dict[int, float] = field(default_factory=dict)
    last_limit_kw: dict[int, float] = field(default_factory=dict)
    setpoint_changes: int = 0
    registration_error: str | None = None
    registered_at: datetime | None = None
    started: StartedEms | None = None


@dataclass
class BenchOutcome:
    config: BenchConfig
    start: datetime
    n_steps: int
    first_step: int
    last_step: int
    placed: dict[str, str]
    runs: list[ScspRun]
    wall_s: float

    def result(self, run: ScspRun) -> ReplayResult:
        """What the SCSP's cars drew, as a replay result (the replay's KPIs, CSVs and plots)."""
        config = self.config
        actual = actual_steps(config.series, self.start, config.step_s, self.n_steps)
        return measured_result(
            ReplayConfig(strategy=run.spec.name, step_s=config.step_s),
            config.site,
            self.start,
            self.n_steps,
            actual,
            config.sessions,
            self.placed,
            run.power_kw,
            [],
            time.perf_counter() - self.wall_s,
            run.setpoint_changes,
        )


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the bench's loop: signals stay the bench's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _phase_currents(site: Site, car: Car, power_kw: float) -> dict[str, float]:
    """Current per grid phase the car draws on (formats §7)."""
    phases = [str(p) for p in car.connector.phases[: car.phases_drawn]]
    current_a = power_kw * 1000.0 / (site.phase_voltage_v * car.phases_drawn)
    return dict.fromkeys(phases, current_a)


class Bench:
    def __init__(self, config: BenchConfig) -> None:
        if config.step_s <= 0 or 86400 % config.step_s:
            raise BenchError(f"step of {config.step_s} s does not divide a day")
        if not 0 < config.response_window_s < config.step_s:
            raise BenchError(f"response window {config.response_window_s:g} s: above 0, below the step")
        if not config.scsps:
            raise BenchError("no SCSP to bench")
        if not config.sessions:
            raise BenchError("no sessions in the log")
        self.config = config
        try:
            self.start, self.n_steps, cars, self.placed = placed_cars(
                config.site, config.sessions, config.step_s
            )
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        step_s = config.step_s
        self.arrivals: dict[int, list[int]] = {}
        self.leavings: dict[int, list[int]] = {}
        for car in cars:
            self.arrivals.setdefault(step_index(car.log.arrival, self.start, step_s, up=True), []).append(
                car.index
            )
            self.leavings.setdefault(step_index(car.log.departure, self.start, step_s, up=True), []).append(
                car.index
            )
        self.first_step = min(self.arrivals)
        self.last_step = min(self.n_steps, max(self.leavings))
        self.runs: list[ScspRun] = []
        self._servers: list[tuple[_EmbeddedServer, asyncio.Task[None]]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._http: list[httpx.AsyncClient] = []
        self._started: list[StartedEms] = []

    def t(self, k: int) -> datetime:
        return self.start + timedelta(seconds=k * self.config.step_s)

    def _clock(self) -> SharedClock:
        config = self.config
        if config.speed == 1.0:
            now = time.time()
            if self.t(self.first_step) < datetime.now(UTC) + timedelta(seconds=config.setup_s):
                raise BenchError(
                    "at --speed 1 the bench runs on real time and the log's first step is past or too "
                    "near: shift the log (--shift-to-day)"
                )
            return SharedClock(datetime.fromtimestamp(now, UTC), 1.0, now)
        lead = self.t(self.first_step) - timedelta(seconds=config.step_s)
        return SharedClock(lead, config.speed, time.time() + config.setup_s)

    async def run(self) -> BenchOutcome:
        wall0 = time.perf_counter()
        try:
            started = await self._prepare()
            shared = self._clock()
            clock = SimClock(ScaledClock(shared.start, shared.speed, shared.real_start_unix_s), shared.speed)
            await self._set_up(started, shared, clock)
            if clock.now() >= self.t(self.first_step):
                raise BenchError(
                    f"setting up the SCSPs took longer than --setup-s {self.config.setup_s:g}: give more"
                )
            for k in range(self.first_step, self.last_step + 1):
                await clock.sleep_until(self.t(k))
                if k > self.first_step:
                    self._draw(k - 1)
                self._push(k)
            for run in self.runs:
                await run.backend.drain(timeout_s=self.config.http_timeout_s)
        finally:
            await self._tear_down()
        return BenchOutcome(
            self.config,
            self.start,
            self.n_steps,
            self.first_step,
            self.last_step,
            self.placed,
            self.runs,
            time.perf_counter() - wall0,
        )

    # ---- set-up and tear-down ---------------------------------------------------------------

    async def _prepare(self) -> dict[str, tuple[StartedEms, BaseException | None]]:
        """The SCSPs to start, their databases set up (before the clock: that takes a while)."""
        config = self.config
        started = [
            StartedEms(
                spec,
                config.workdir / f"scsp-{i}-{spec.name}",
                config.site_path,
                config.site.id,
                config.series_path,
                config.plan_interval_s,
                config.step_s,
                config.host,
            )
            for i, spec in enumerate(config.scsps)
            if spec.started
        ]
        self._started = started
        outcomes = await asyncio.gather(*(e.prepare() for e in started), return_exceptions=True)
        return {
            e.spec.name: (e, o if isinstance(o, BaseException) else None)
            for e, o in zip(started, outcomes, strict=True)
        }

    async def _set_up(
        self,
        prepared: dict[str, tuple[StartedEms, BaseException | None]],
        shared: SharedClock,
        clock: SimClock,
    ) -> None:
        config = self.config
        ready = [e for e, failed in prepared.values() if failed is None]
        served = await asyncio.gather(*(e.serve(shared) for e in ready), return_exceptions=True)
        by_name: dict[str, tuple[StartedEms, ScspSpec | BaseException]] = {
            name: (e, failed) for name, (e, failed) in prepared.items() if failed is not None
        }
        by_name |= {e.spec.name: (e, o) for e, o in zip(ready, served, strict=True)}
        specs = list(config.scsps)
        for spec in specs:
            port = free_port(config.host)
            backend = BenchCpo(
                config.site,
                clock,
                country_code=config.country_code,
                party_id=config.party_id,
                public_url=f"http://{config.host}:{port}",
                mode=config.mode,
            )
            _s, _n, cars, _p = placed_cars(config.site, config.sessions, config.step_s)
            run = ScspRun(spec, backend, cars)
            if spec.name in by_name:
                ems, outcome = by_name[spec.name]
                run.started = ems
                if isinstance(outcome, BaseException):
                    run.registration_error = f"not started: {outcome}"
                else:
                    run.spec = outcome
            self.runs.append(run)
            await self._serve(backend, port)
        await asyncio.gather(*(self._register(run) for run in self.runs if run.registration_error is None))

    async def _serve(self, backend: BenchCpo, port: int) -> None:
        app = make_app(backend)
        app.add_middleware(TrafficMiddleware, ledger=backend.ledger)
        server = _EmbeddedServer(
            uvicorn.Config(app, host=self.config.host, port=port, log_level="error", lifespan="off")
        )
        task = asyncio.create_task(server.serve(), name=f"bench-cpo-{port}")
        self._servers.append((server, task))
        while not server.started:
            if task.done():
                task.result()
                raise BenchError(f"the bench's CPO on port {port} stopped before starting")
            await asyncio.sleep(0.02)
        http = httpx.AsyncClient(timeout=self.config.http_timeout_s)
        self._http.append(http)
        backend.ems = EmsClient(http, backend.country_code, backend.party_id, backend.registration)
        self._tasks.append(asyncio.create_task(backend.outbox_worker(), name=f"outbox-{port}"))

    async def _register(self, run: ScspRun) -> None:
        spec = run.spec
        assert spec.versions_url is not None and spec.token_a is not None
        try:
            await run.backend.register_with_ems(spec.versions_url, spec.token_a)
            run.registered_at = run.backend.clock.now()
        except (OcpiCallError, httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            run.registration_error = f"{exc.__class__.__name__}: {exc}"
            LOG.warning("SCSP %s did not register: %s", spec.name, exc)

    async def _tear_down(self) -> None:
        for task in self._tasks:
            task.cancel()
        for run in self.runs:
            run.backend.cancel_tasks()
        for server, _task in self._servers:
            server.should_exit = True
        await asyncio.gather(*self._tasks, *(t for _s, t in self._servers), return_exceptions=True)
        for http in self._http:
            await http.aclose()
        for ems in self._started:
            ems.stop()

    # ---- each step --------------------------------------------------------------------------

    def _draw(self, k: int) -> None:
        """Step k of every SCSP's cars, under the profiles in force (see the module docstring)."""
        t0, t1 = self.t(k), self.t(k + 1)
        step_h = self.config.step_s / 3600.0
        window_s = self.config.response_window_s
        voltage_v = self.config.site.phase_voltage_v
        for run in self.runs:
            for car in run.cars:
                if not car.draw_start <= k < car.draw_end:
                    continue
                received = run.backend.profiles_in_force(car.log.session_id, t1)
                limit_kw = limit_over_kw(car, received, t0, t1, voltage_v, window_s)
                power_kw = draw(car, limit_kw, step_h)
                run.setpoint_changes += count_setpoint_change(run.last_limit_kw, car.index, limit_kw)
                run.power_kw[car.index, k] = power_kw
                run.energy_kwh[car.index] = run.energy_kwh.get(car.index, 0.0) + power_kw * step_h

    def _push(self, k: int) -> None:
        """What the CPO tells each SCSP at boundary k: every meter, then who left, who came.

        The meters first: a plan that a departure or an arrival starts then sees the step's
        meter values, as the replay's planner does at the step. Pushed after them, the plan a
        session's start set off read some cars' energies a step old."""
        t = self.t(k)
        leaving = set(self.leavings.get(k, ()))
        arriving = set(self.arrivals.get(k, ()))
        for run in self.runs:
            backend = run.backend
            for car in run.cars:
                arrived = step_index(car.log.arrival, self.start, self.config.step_s, up=True)
                left = step_index(car.log.departure, self.start, self.config.step_s, up=True)
                if arrived < k < left:
                    power_kw = run.power_kw.get((car.index, k - 1), 0.0)
                    backend.car_metered(
                        car.log.session_id,
                        car.connector.id,
                        t,
                        run.energy_kwh.get(car.index, 0.0),
                        _phase_currents(self.config.site, car, power_kw),
                    )
            for car in run.cars:
                if car.index in leaving:
                    backend.car_left(
                        car.log.session_id, car.log.departure, run.energy_kwh.get(car.index, 0.0)
                    )
            for car in run.cars:
                if car.index in arriving and car.index not in leaving:
                    backend.car_arrived(car.log, car.connector.id, t)
            if backend.mode == "pull":
                backend.send_due_preferences()


async def run_bench(config: BenchConfig) -> BenchOutcome:
    return await Bench(config).run()


def percentile_s(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)
