"""The Celery application and the names of its tasks, shared by replicas (which send) and
workers (which run them).

Why Celery on Redis: both are what operators of Python services already run; Celery gives
acknowledgement after the task (`task_acks_late`), redelivery of a task whose worker died, and
fair sharing of tasks between workers (one fetched at a time), which is all the planner asks of
a broker. Nothing is kept in the broker that the database does not also hold. (No countdowns:
a task with one is held by the worker that fetched it, so a burst would go to one worker.)
"""

from __future__ import annotations

from celery import Celery

from ems.core.config import Settings

QUEUE = "ems"
EVENTS_TASK = "ems.events"
"""Consume the event log (no arguments): sent by a replica after it appended events."""
PLAN_TASK = "ems.plan"
"""Plan one unit (its id) if it is due and free."""
PULL_TASK = "ems.pull"
"""Pull every CPO's Sessions and Locations (the cluster's hourly job)."""


def celery_app(settings: Settings) -> Celery:
    if not settings.broker_url:
        raise ValueError("EMS_BROKER_URL is not set: a cluster needs a broker")
    app = Celery("ems", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=QUEUE,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        # A task is acknowledged once done: a worker killed mid-plan leaves it to another.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": 60},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        # A replica never waits on a broker that is down: the event is in the log already.
        task_publish_retry=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    return app
