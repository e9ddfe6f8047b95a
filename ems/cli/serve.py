"""`ems serve`: the EMS as a web service (OCPI endpoints, planner, dispatch, pages).

The public URL (the base of the versions URL partners register with and of every URL the EMS
hands out) is `EMS_PUBLIC_URL` when set; otherwise the address the server listens on. The one
in use is recorded in the database, so `ems partner invite` run beside the server prints it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from typing import Annotated

import typer

from ems.cli.common import fail, open_context
from ems.core.config import get_settings
from ems.core.logs import configure_logging
from ems.planning.strategies import plan_solver
from ems.store.db import transaction
from ems.store.server_settings import PUBLIC_URL, write_server_setting

logger = logging.getLogger(__name__)
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


def listening_url(host: str, port: int) -> str:
    """The URL a server bound to host:port is reached at; a wildcard bind names this machine."""
    name = socket.getfqdn() if host in _WILDCARD_HOSTS else host
    try:
        if ipaddress.ip_address(name).version == 6:
            name = f"[{name}]"
    except ValueError:
        pass  # a host name
    return f"http://{name}:{port}"


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: Annotated[
        str, typer.Option(help="text (for people) or json (one object a line, with the ids of each line).")
    ] = "text",
    forwarded_allow_ips: Annotated[
        str,
        typer.Option(
            help="Proxies trusted for X-Forwarded-For/-Proto (comma-separated addresses or networks, "
            "'*' for any); behind a proxy also set EMS_PUBLIC_URL to the URL partners use."
        ),
    ] = "127.0.0.1",
) -> None:
    """Run the EMS: OCPI endpoints, the planner and dispatch, the admin and driver pages."""
    import uvicorn

    if log_level not in {"debug", "info", "warning", "error"}:
        fail(f"--log-level {log_level!r}: debug, info, warning or error")
    if not 1 <= port <= 65535:
        fail(f"--port {port}: 1 to 65535 expected")
    try:
        configure_logging(log_level, log_format)
    except ValueError:  # not one of ems.core.logs.LOG_FORMATS
        fail(f"--log-format {log_format!r}: text or json")
    try:
        settings = get_settings()
    except ValueError as exc:  # pydantic's ValidationError: a bad EMS_* variable
        fail(f"bad settings: {' '.join(str(exc).split())}")
    try:
        plan_solver(settings.plan_strategy)
    except ValueError as exc:
        fail(f"EMS_PLAN_STRATEGY: {exc}")
    if "public_url" not in settings.model_fields_set:
        # The app reads its settings afresh in this process: the derived URL reaches it this way.
        os.environ["EMS_PUBLIC_URL"] = listening_url(host, port)
        get_settings.cache_clear()
        if host in _WILDCARD_HOSTS:
            logger.warning(
                "EMS_PUBLIC_URL unset and listening on every address: advertising %s; "
                "set EMS_PUBLIC_URL to the URL partners reach",
                os.environ["EMS_PUBLIC_URL"],
            )
    ctx = open_context()
    try:
        with transaction(ctx.db) as db:
            write_server_setting(db, PUBLIC_URL, ctx.settings.public_url)
    finally:
        ctx.close()
    logger.info("public URL %s (versions at %s)", ctx.settings.public_url, ctx.settings.versions_url)
    # By name, not by import: `api` depends on `ems`, never the other way round.
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # uvicorn's loggers propagate to ours, in the chosen format
        proxy_headers=True,
        forwarded_allow_ips=forwarded_allow_ips,
    )
