"""`ems demo`: the EMS and a simulated CPO with OCPP charge points, on loopback, in fast time.

The two processes share one `ScaledClock` (same start, speed and real start instant), so the
CPO's session times and the EMS's plans agree. The demo database is made afresh each run.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import httpx
import typer

from ems import sites
from ems.admin.users import create_user
from ems.cli.common import fail
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi.partners import invite
from ems.sites.forecasts import forecast_series, import_series, office_base_load_kw

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


@dataclass(frozen=True)
class DemoOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    cpo_port: int = 9001
    ocpp_port: int = 9002
    speed: float = 60.0
    start_hour: int = 7
    database: Path = Path("ems-demo.db")
    site_path: Path = EXAMPLES / "sites" / "office-pv.json"
    sessions_path: Path = EXAMPLES / "cpo_simulator" / "office_day.csv"


def _fresh_database(path: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return f"sqlite:///{path.resolve()}"


def _wait_for(url: str, process: subprocess.Popen[bytes], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer at {url} within {timeout_s:.0f} s")


def run_demo(options: DemoOptions) -> int:
    if not options.site_path.exists() or not options.sessions_path.exists():
        raise FileNotFoundError(
            f"the demo needs {options.site_path} and {options.sessions_path}"
            " (run it from a clone of the project)"
        )
    site_data = json.loads(options.site_path.read_text())
    zone = ZoneInfo(site_data["timezone"])
    today = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    clock_start = today + timedelta(hours=options.start_hour)
    real_start = time.time() + 5.0
    public_url = f"http://{options.host}:{options.port}"
    admin_token = secrets.token_urlsafe(24)
    env = {
        "EMS_DATABASE_URL": _fresh_database(options.database),
        "EMS_PUBLIC_URL": public_url,
        "EMS_CLOCK_START": clock_start.isoformat(),
        "EMS_CLOCK_SPEED": str(options.speed),
        "EMS_CLOCK_REAL_START_UNIX_S": str(real_start),
        "EMS_ADMIN_TOKEN": admin_token,
        "EMS_PLAN_INTERVAL_S": str(max(5.0, 900.0 / options.speed)),
        "EMS_COUNTRY_CODE": "FR",
        "EMS_PARTY_ID": "SCS",
    }
    settings = Settings(**{k.removeprefix("EMS_").lower(): v for k, v in env.items()})  # type: ignore[arg-type]
    ctx = EmsContext.create(settings)
    stored, _ = sites.import_site(ctx, site_data, sites.Change(f"demo: {options.site_path.name}", "ems demo"))
    forecast = forecast_series(
        stored.site, today.astimezone(ZoneInfo("UTC")), 900, 2 * 96, base_load_kw=office_base_load_kw
    )
    import_series(ctx, stored.site.id, forecast)
    invitation = invite(ctx, "FR", "SIM", "CPO")
    admin_password = secrets.token_urlsafe(12)
    create_user(ctx, "admin", admin_password)
    ctx.close()

    children: list[subprocess.Popen[bytes]] = []
    process_env = {**os.environ, **env}

    def stop() -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    try:
        ems = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ems.cli",
                "serve",
                "--host",
                options.host,
                "--port",
                str(options.port),
                "--log-level",
                "warning",
            ],
            env=process_env,
            cwd=REPO,
        )
        children.append(ems)
        _wait_for(f"{public_url}/healthz", ems, "the EMS")
        simulator = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "examples.cpo_simulator",
                "--site",
                str(options.site_path),
                "--sessions",
                str(options.sessions_path),
                "--today",
                "--ems-versions-url",
                invitation.versions_url,
                f"--token-a={invitation.token_a}",
                "--port",
                str(options.cpo_port),
                "--ocpp-port",
                str(options.ocpp_port),
                "--clock-start",
                clock_start.isoformat(),
                "--speed",
                str(options.speed),
                "--real-start-unix-s",
                str(real_start),
            ],
            env=process_env,
            cwd=REPO,
        )
        children.append(simulator)
        print(f"EMS dashboard:      {public_url}/admin/sites/{stored.site.id}/dashboard", flush=True)
        print(f"Admin login:        admin / {admin_password}", flush=True)
        print(f"OCPI versions URL:  {public_url}/ocpi/versions", flush=True)
        print(f"Admin API token:    {admin_token}", flush=True)
        print(
            f"Simulated day from {clock_start:%Y-%m-%d %H:%M %Z} at {options.speed:g}x; "
            f"database {options.database}. Ctrl-C stops everything.",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child for child in children if child.poll() not in (None, 0)]
        return 1 if failed else 0
    except KeyboardInterrupt:  # SIGINT or SIGTERM (`ems.cli.main.install_stop_handlers`)
        return 0
    finally:
        stop()


def demo_command(
    host: Annotated[str, typer.Option(help="Address of the EMS.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the EMS.")] = 8000,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 60.0,
    database: Annotated[str, typer.Option(help="SQLite file, made afresh.")] = "ems-demo.db",
    cpo_port: Annotated[int, typer.Option(help="Port of the simulated CPO's OCPI back-end.")] = 9001,
    ocpp_port: Annotated[int, typer.Option(help="Port of its OCPP central system.")] = 9002,
) -> None:
    """The EMS with a simulated CPO and OCPP charge points on the office sample site, in fast time."""
    if speed <= 0:
        fail(f"--speed {speed}: must be positive")
    try:
        code = run_demo(
            DemoOptions(
                host=host,
                port=port,
                speed=speed,
                database=Path(database),
                cpo_port=cpo_port,
                ocpp_port=ocpp_port,
            )
        )
    except (FileNotFoundError, RuntimeError) as exc:
        fail(str(exc))
    raise typer.Exit(code=code)
