"""The SCSPs under test: given by a versions URL and token A, or started here (`ems:STRATEGY`).

A started SCSP is this project's EMS as deployed: `ems serve` in its own process on a fresh
SQLite database, set up through its own command line (`ems site import`, `ems series import`,
`ems partner invite`), planning with `EMS_PLAN_STRATEGY` on the bench's shared simulated clock.
The bench learns nothing from it but what it says over OCPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

STARTED = "ems"
START_TIMEOUT_S = 60.0


class ScspSpecError(ValueError):
    """A `--scsp` that names no SCSP the bench can reach or start."""


@dataclass(frozen=True)
class ScspSpec:
    """One SCSP: `name`, and either `versions_url` + `token_a`, or `strategy` to start this EMS."""

    name: str
    versions_url: str | None = None
    token_a: str | None = None
    strategy: str | None = None

    @property
    def started(self) -> bool:
        return self.strategy is not None


def parse_scsp(text: str, tokens: dict[str, str]) -> ScspSpec:
    """`[NAME=]ems[:STRATEGY]` or `NAME=VERSIONS_URL` (its token A in `tokens[NAME]`)."""
    name, sep, target = text.partition("=")
    if not sep:
        name, target = "", text
    name = name.strip()
    target = target.strip()
    if target == STARTED or target.startswith(STARTED + ":"):
        strategy = target.partition(":")[2] or "optimized"
        return ScspSpec(name or f"ems-{strategy}", strategy=strategy)
    if not target.startswith(("http://", "https://")):
        raise ScspSpecError(f"--scsp {text!r}: expected NAME=VERSIONS_URL or [NAME=]ems[:STRATEGY]")
    if not name:
        raise ScspSpecError(f"--scsp {text!r}: an SCSP given by URL needs a NAME= (and --token-a NAME=TOKEN)")
    token = tokens.get(name)
    if not token:
        raise ScspSpecError(f"--scsp {text!r}: no --token-a {name}=TOKEN given")
    return ScspSpec(name, versions_url=target, token_a=token)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class SharedClock:
    """The simulated clock every started SCSP and the bench run on (`ems.core.clock.ScaledClock`)."""

    start: datetime
    speed: float
    real_start_unix_s: float

    def env(self) -> dict[str, str]:
        return {
            "EMS_CLOCK_START": self.start.isoformat(),
            "EMS_CLOCK_SPEED": repr(self.speed),
            "EMS_CLOCK_REAL_START_UNIX_S": repr(self.real_start_unix_s),
        }


class StartedEms:
    """`ems serve` with a strategy, on its own database and port, stopped with the bench."""

    def __init__(
        self,
        spec: ScspSpec,
        workdir: Path,
        site_path: Path,
        site_id: str,
        series_path: Path | None,
        plan_interval_s: float,
        pull_interval_s: float,
        host: str = "127.0.0.1",
    ) -> None:
        assert spec.strategy is not None
        self.spec = spec
        self.workdir = workdir
        self.site_path = site_path
        self.site_id = site_id
        self.series_path = series_path
        self.port = free_port(host)
        self.url = f"http://{host}:{self.port}"
        self.plan_interval_s = plan_interval_s
        self.pull_interval_s = pull_interval_s
        self.env = {
            **os.environ,
            "EMS_DATABASE_URL": f"sqlite:///{workdir / 'ems.db'}",
            "EMS_PUBLIC_URL": self.url,
            "EMS_PLAN_STRATEGY": spec.strategy,
        }
        self.invitation: dict[str, str] = {}
        self.process: subprocess.Popen[bytes] | None = None

    async def _ems(self, *args: str) -> str:
        """One `ems` command on this SCSP's database; its stdout, or an error with its stderr."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ems.cli",
            *args,
            env=self.env,
            cwd=self.workdir,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
        if process.returncode != 0:
            line = err.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
            raise RuntimeError(f"{self.spec.name}: `ems {args[0]} {args[1]}` failed: {line[0]}")
        return out.decode()

    async def prepare(self) -> None:
        """The database: the site, its series, an invitation for the bench (no clock needed yet)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        await self._ems("site", "import", str(self.site_path))
        if self.series_path is not None:
            await self._ems("series", "import", str(self.series_path), "--site", self.site_id)
        self.invitation = json.loads(
            await self._ems("partner", "invite", "--country-code", "FR", "--party-id", "BEN", "--role", "CPO")
        )

    async def serve(self, clock: SharedClock) -> ScspSpec:
        """`ems serve` on the shared clock; the spec with its versions URL and token A once it answers."""
        env = {
            **self.env,
            **clock.env(),
            # Real seconds: the bench gives them in simulated time.
            "EMS_PLAN_INTERVAL_S": repr(self.plan_interval_s / clock.speed),
            "EMS_PULL_INTERVAL_S": repr(self.pull_interval_s / clock.speed),
        }
        log = (self.workdir / "ems.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ems.cli", "serve", "--port", str(self.port), "--log-level", "warning"],
            env=env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=1.0) as http:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"{self.spec.name}: `ems serve` exited ({self.process.returncode})")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{self.spec.name}: `ems serve` did not answer in {START_TIMEOUT_S:g} s"
                    )
                await asyncio.sleep(0.1)
        return ScspSpec(
            self.spec.name,
            versions_url=str(self.invitation["versions_url"]),
            token_a=str(self.invitation["token_a"]),
            strategy=self.spec.strategy,
        )

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
