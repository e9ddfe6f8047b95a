"""Command line: `python -m examples.cpo_simulator --site SITE --sessions LOG.csv …`.

Prints one JSON line once registered with the EMS and ready (`{"event": "ready", …}`); without
`--ems-versions-url`/`--token-a` it first prints `{"event": "invitation", "token_a", "versions_url"}`
for `ems partner register` and waits. Ctrl-C or SIGTERM stops it cleanly. Bad input: one-line
error, exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

from grid_models import SiteValidationError

from .arrivals import SessionLogError
from .ocpi_client import OcpiCallError
from .simulator import Simulator, SimulatorConfig, run_simulator


def _time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone offset (or Z)")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.cpo_simulator",
        description="A simulated CPO (OCPI 2.2.1 back-end + OCPP 1.6J central system and charge points).",
    )
    parser.add_argument("--site", type=Path, required=True, help="site file (formats.md §1)")
    parser.add_argument(
        "--sessions", type=Path, required=True, help="session log sessions.csv (formats.md §3)"
    )
    parser.add_argument("--ems-versions-url", help="the EMS's OCPI versions URL (from `ems partner invite`)")
    parser.add_argument("--token-a", help="the token A printed by `ems partner invite`")
    parser.add_argument("--port", type=int, default=9001, help="OCPI HTTP port (127.0.0.1)")
    parser.add_argument("--ocpp-port", type=int, default=9002, help="OCPP WebSocket port (127.0.0.1)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--clock-start", type=_time, help="simulated time at start (ISO with offset; default now)"
    )
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per real second")
    parser.add_argument(
        "--real-start-unix-s", type=float, help="real instant of --clock-start (to share the clock)"
    )
    parser.add_argument(
        "--today", action="store_true", help="shift the log so its first day is the clock's day"
    )
    parser.add_argument(
        "--meter-interval-s", type=float, default=60.0, help="simulated seconds between MeterValues"
    )
    parser.add_argument("--country-code", default="FR")
    parser.add_argument("--party-id", default="SIM")
    parser.add_argument("--exit-when-done", action="store_true", help="stop once every visit was replayed")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    if bool(args.ems_versions_url) != bool(args.token_a):
        parser.error("--ems-versions-url and --token-a go together")
    if args.speed <= 0 or args.meter_interval_s <= 0:
        parser.error("--speed and --meter-interval-s must be positive")
    if len(args.country_code) != 2 or len(args.party_id) != 3:
        parser.error("--country-code takes 2 characters, --party-id 3")
    return args


def config_from(args: argparse.Namespace) -> SimulatorConfig:
    return SimulatorConfig(
        site_path=args.site,
        sessions_path=args.sessions,
        port=args.port,
        ocpp_port=args.ocpp_port,
        ems_versions_url=args.ems_versions_url,
        token_a=args.token_a,
        clock_start=args.clock_start,
        speed=args.speed,
        real_start_unix_s=args.real_start_unix_s,
        today=args.today,
        country_code=args.country_code.upper(),
        party_id=args.party_id.upper(),
        meter_interval_s=args.meter_interval_s,
        host=args.host,
    )


def _print(line: dict[str, object]) -> None:
    print(json.dumps(line), flush=True)


async def _main(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def ready(sim: Simulator) -> None:
        _print(
            {
                "event": "ready",
                "versions_url": sim.backend.versions_url,
                "ocpp_url": sim.central.url,
                "party": f"{sim.backend.country_code}/{sim.backend.party_id}",
                "location_id": sim.backend.location_id,
                "now": sim.clock.now().isoformat(),
                "speed": sim.clock.speed,
                "visits": len(sim.schedule.arrivals),
                "skipped": len(sim.schedule.skipped),
            }
        )

    def invitation(token_a: str, versions_url: str) -> None:
        _print({"event": "invitation", "token_a": token_a, "versions_url": versions_url})

    await run_simulator(
        config_from(args),
        stop=stop,
        exit_when_done=args.exit_when_done,
        on_ready=ready,
        on_invitation=invitation,
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(_main(args))
    except (SessionLogError, SiteValidationError, OcpiCallError, OSError, ValueError) as exc:
        print(f"error: {exc}".splitlines()[0], file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        with contextlib.suppress(Exception):
            sys.exit(130)


if __name__ == "__main__":
    main()
