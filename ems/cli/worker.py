"""`ems worker`: plan and dispatch for a cluster of `ems serve` replicas (issue #18).

It reads the same settings as `ems serve` (EMS_DATABASE_URL, EMS_BROKER_URL, ...) and needs a
broker; run as many as there are cores to plan on. Stop it with Ctrl-C or SIGTERM: the task it
is running finishes first (Celery's warm shutdown); kill -9 loses nothing but its lease's time.
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from ems.cli.common import fail, open_context
from ems.core.config import get_settings
from ems.core.logs import configure_logging

logger = logging.getLogger(__name__)


def worker_command(
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: Annotated[
        str, typer.Option(help="text (for people) or json (one object a line, with the ids of each line).")
    ] = "text",
) -> None:
    """Run a worker: plan sites and deliver profiles for the EMS replicas on the same database."""
    from ems.cluster.tasks import QUEUE, celery_app
    from ems.cluster.worker import WorkerRuntime, register_tasks

    if log_level not in {"debug", "info", "warning", "error"}:
        fail(f"--log-level {log_level!r}: debug, info, warning or error")
    try:
        configure_logging(log_level, log_format)
    except ValueError:
        fail(f"--log-format {log_format!r}: text or json")
    try:
        settings = get_settings()
    except ValueError as exc:
        fail(f"bad settings: {' '.join(str(exc).split())}")
    if not settings.broker_url:
        fail(
            "EMS_BROKER_URL is not set: a worker takes its tasks from a broker (e.g. redis://127.0.0.1:6379/0)"
        )
    ctx = open_context(log_events=False)
    app = celery_app(ctx.settings)
    runtime = WorkerRuntime(ctx, app)
    register_tasks(app, runtime)
    runtime.start()
    try:
        worker = app.Worker(
            pool="solo",
            concurrency=1,
            queues=[QUEUE],
            hostname=runtime.holder.replace(":", "-") + "@ems",
            loglevel=log_level.upper(),
            without_mingle=True,
            without_gossip=True,
            quiet=True,
        )
        worker.start()
    finally:
        runtime.stop()
        ctx.close()
