"""Every long-running command stops on SIGINT and on SIGTERM, children included, even when its
parent left both signals ignored (a background job, some CI runners): the dispositions a process
inherits are not the ones it runs with."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.servers import REPO, free_port, wait_for, wait_until_up

pytestmark = pytest.mark.e2e


def _ignore_stop_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _command(name: str, tmp_path: Path, ports: list[int]) -> tuple[list[str], str, list[str]]:
    """The command line, the first line it prints once up, and the health URLs of all it started."""
    port, cpo_port, ocpp_port = ports
    if name == "serve":
        return (
            ["-m", "ems.cli", "serve", "--port", str(port), "--log-level", "warning"],
            "",
            [f"http://127.0.0.1:{port}/healthz"],
        )
    if name == "demo":
        args = ["--port", str(port), "--cpo-port", str(cpo_port), "--ocpp-port", str(ocpp_port)]
        return (
            ["-m", "ems.cli", "demo", *args, "--database", str(tmp_path / "demo.db")],
            "EMS dashboard:",
            [f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{cpo_port}/healthz"],
        )
    return (
        [
            "-m",
            "examples.cpo_simulator",
            "--site",
            "examples/sites/office-pv.json",
            "--sessions",
            "examples/logs/office-pv-2026-06.csv",
            "--port",
            str(cpo_port),
            "--ocpp-port",
            str(ocpp_port),
        ],
        '{"event": "invitation"',
        [f"http://127.0.0.1:{cpo_port}/healthz"],
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("name", ["serve", "demo", "simulator"])
def test_stops_whatever_it_inherited(name: str, signum: signal.Signals, tmp_path: Path) -> None:
    args, ready_prefix, health_urls = _command(name, tmp_path, [free_port() for _ in range(3)])
    env = {**os.environ, "EMS_DATABASE_URL": f"sqlite:///{tmp_path / 'ems.db'}"}
    log_path = tmp_path / "output.log"
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=REPO,
        env=env,
        stdout=log_path.open("w"),  # a file, not a pipe: a full pipe would block the command
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the signal reaches this process only: it must pass it on
        preexec_fn=_ignore_stop_signals,
    )
    try:
        if ready_prefix:
            wait_for(lambda: ready_prefix in log_path.read_text() or process.poll(), 60, f"{name} up")
            assert process.poll() is None, log_path.read_text()[-2000:]
        for url in health_urls:
            wait_until_up(url, process=process)
        process.send_signal(signum)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
            pytest.fail(f"{name} still running 30 s after {signum.name}")
    assert code in (0, 130), f"{name} exited {code} on {signum.name}"
    for url in health_urls:
        with pytest.raises(httpx.HTTPError):
            httpx.get(url, timeout=1)
