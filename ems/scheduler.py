"""Scheduled jobs of the running server (APScheduler in a background thread)."""

from __future__ import annotations

from apscheduler.schedulers.background import BackgroundScheduler

from ems.context import EmsContext
from ems.ocpi.sync import sync_all


def start_scheduler(ctx: EmsContext) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(timezone="UTC")
    scheduler.add_job(
        sync_all,
        "interval",
        args=[ctx],
        seconds=ctx.settings.pull_interval_s,
        jitter=min(300.0, ctx.settings.pull_interval_s / 10),
        id="ocpi-pull",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler
