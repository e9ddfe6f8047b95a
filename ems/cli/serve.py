"""`ems serve`: the EMS as a web service (OCPI endpoints, planner, dispatch, pages)."""

from __future__ import annotations

from typing import Annotated

import typer

from ems.cli.common import fail
from ems.core.config import get_settings


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the EMS: OCPI endpoints, the planner and dispatch, the admin and driver pages."""
    import logging

    import uvicorn

    if log_level not in {"debug", "info", "warning", "error"}:
        fail(f"--log-level {log_level!r}: debug, info, warning or error")
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        get_settings()
    except ValueError as exc:  # pydantic's ValidationError: a bad EMS_* variable
        fail(f"bad settings: {' '.join(str(exc).split())}")
    # By name, not by import: `api` depends on `ems`, never the other way round.
    uvicorn.run("api.app:create_app", factory=True, host=host, port=port, log_level=log_level)
