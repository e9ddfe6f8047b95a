"""An API replica's side of the cluster: every event that matters for planning goes to the
database's event log, then a wake-up to the workers.

The log row is written right after the change it announces commits, in the request's thread,
so what a CPO was acknowledged is in the log before the response leaves. The broker is poked
from a thread of its own: a broker that is slow or down never delays a request; the workers'
sweep finds the log rows anyway.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from celery import Celery
from sqlalchemy import insert

from ems.cluster.tasks import EVENTS_TASK, QUEUE
from ems.core.context import EmsContext
from ems.core.events import (
    ChargingProfileOutcome,
    DomainEvent,
    SessionChange,
    SessionEvent,
    event_to_json,
)
from ems.dispatch.outbox import complete_on_result
from ems.store.cluster import DomainEventRecord
from ems.store.db import transaction

logger = logging.getLogger(__name__)

_INSERT_EVENT = insert(DomainEventRecord)


def for_workers(event: DomainEvent) -> bool:
    """Whether workers need the event: not meter updates (the next plan reads them, and a
    session's first meter values are found by the workers' sweep), not profile answers (stored
    where they arrive)."""
    if isinstance(event, SessionEvent):
        return event.change != SessionChange.UPDATED
    return not isinstance(event, ChargingProfileOutcome)


def append_to_log(ctx: EmsContext, event: DomainEvent) -> bool:
    """Append `event` to the event log if workers need it; whether it was."""
    if not for_workers(event):
        return False
    kind, payload = event_to_json(event)
    with transaction(ctx.db) as db:
        db.execute(_INSERT_EVENT, {"kind": kind, "payload": payload})
    return True


def log_events_of(ctx: EmsContext) -> Callable[[], None]:
    """For a command run beside a cluster (`ems site import`, `ems series import`): what it
    changes reaches the workers through the log, read by their sweep within a second or so."""

    def append(event: DomainEvent) -> None:
        append_to_log(ctx, event)

    return ctx.bus.subscribe(append)


class EventForwarder:
    def __init__(self, ctx: EmsContext, app: Celery) -> None:
        self.ctx = ctx
        self.app = app
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def on_event(self, event: DomainEvent) -> None:
        complete_on_result(self.ctx, event)
        if append_to_log(self.ctx, event):
            self._poke.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._poke.wait(timeout=1.0):
                continue
            self._poke.clear()
            try:
                self.app.send_task(EVENTS_TASK, queue=QUEUE, retry=False)
            except Exception as exc:  # the broker is down: the sweep reads the log anyway
                logger.warning("could not wake the workers: %s", exc)
                self._stop.wait(1.0)

    def start(self) -> None:
        self._unsubscribe = self.ctx.bus.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._loop, name="event-forwarder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._poke.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout=5)
