"""The CPO simulator as a process of its own, for end-to-end tests on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.support.servers import REPO, free_port

LOG_HEADER = (
    "session_id,evse_uid,connector_id,token_uid,arrival,departure,energy_kwh,max_power_kw,"
    "vehicle_phases,declared_departure,declared_energy_kwh,soc_arrival_pct,battery_capacity_kwh\n"
)


def write_log(path: Path, start: datetime, rows: list[tuple[Any, ...]]) -> None:
    """A sessions.csv; each row is (id, evse_uid, token, arrival_min, departure_min, energy_kwh,
    max_power_kw, phases, declared_departure_min or None, declared_energy_kwh or None)."""

    def at(minutes: float | None) -> str:
        return "" if minutes is None else (start + timedelta(minutes=minutes)).isoformat()

    lines = [
        f"{sid},{evse},1,{token},{at(arr)},{at(dep)},{kwh},{pmax},{phases},{at(ddep)},"
        f"{'' if dkwh is None else dkwh},,\n"
        for sid, evse, token, arr, dep, kwh, pmax, phases, ddep, dkwh in rows
    ]
    path.write_text(LOG_HEADER + "".join(lines))


class SimulatorProcess:
    def __init__(self, process: subprocess.Popen[str], url: str, ready: dict[str, Any]) -> None:
        self.process = process
        self.url = url
        self.ready = ready

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/simulator/state", timeout=5).json()  # type: ignore[no-any-return]


@contextmanager
def simulator_process(
    tmp_path: Path,
    *,
    site: Path,
    log: Path,
    versions_url: str,
    token_a: str,
    clock_start: datetime,
    speed: float,
    real_start_unix_s: float,
    meter_interval_s: float = 60.0,
    party_id: str = "SIM",
) -> Iterator[SimulatorProcess]:
    """Start the simulator (the CPO FR/`party_id`), wait for its `ready` line, stop it on exit."""
    port, ocpp_port = free_port(), free_port()
    stderr_path = tmp_path / f"simulator-{party_id}.log" if party_id != "SIM" else tmp_path / "simulator.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "examples.cpo_simulator",
            "--site",
            str(site),
            "--sessions",
            str(log),
            "--ems-versions-url",
            versions_url,
            f"--token-a={token_a}",
            "--port",
            str(port),
            "--ocpp-port",
            str(ocpp_port),
            "--clock-start",
            clock_start.isoformat(),
            "--speed",
            str(speed),
            "--real-start-unix-s",
            str(real_start_unix_s),
            "--meter-interval-s",
            str(meter_interval_s),
            "--party-id",
            party_id,
        ],
        cwd=REPO,
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        text=True,
    )
    try:
        lines: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=30)
        if not lines or not lines[0].strip():
            raise AssertionError(f"simulator not ready; log:\n{stderr_path.read_text()[-3000:]}")
        yield SimulatorProcess(process, f"http://127.0.0.1:{port}", json.loads(lines[0]))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
