"""Dispatch: delivering planned charging profiles to CPOs, through a database outbox.

The planner enqueues; a worker delivers. The outbox row is written in the planner's
transaction and survives a crash, so a profile is never lost between planning and sending.
Rules, each from how CPOs behave:

- only changed profiles are sent: a profile that sets the same limits from now on as the last
  one delivered (or queued) for the session is not sent again;
- a newer profile supersedes an older one still queued, so after an outage each session gets
  its latest profile once, not the backlog;
- never a profile for a finished or stale session; when a session ends and the CPO still holds
  a profile of ours, it gets a DELETE;
- answers: ACCEPTED → wait for the asynchronous result (OCPI: assume none after `timeout`);
  REJECTED / NOT_SUPPORTED → recorded, final; TOO_OFTEN → later; UNKNOWN_SESSION → the session
  is marked stale; no answer (CPO down) → retried with exponential backoff and jitter;
- a per-CPO rate limit (token bucket).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select, update

from ems.context import EmsContext
from ems.events import ChargingProfileOutcome, DomainEvent
from ems.ocpi import profiles
from ems.ocpi.datetimes import parse_ocpi_datetime
from ems.ocpi.profiles import ProfileCallOutcome
from ems.store.db import transaction
from ems.store.models import ChargingSession, ProfileRequest
from ems.store.planning import ProfileOutbox

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = frozenset({"ACTIVE", "PENDING"})
RETRY_BASE_S = 1.0
RETRY_CAP_S = 300.0
TOO_OFTEN_DELAY_S = 60.0
DEFAULT_RESULT_TIMEOUT_S = 60


class ProfileSink(Protocol):
    """Where profiles go: a CPO over OCPI, or an in-process simulated CPO (replay, tests)."""

    def send_profile(self, session_pk: int, charging_profile: dict[str, Any]) -> ProfileCallOutcome: ...

    def clear_profile(self, session_pk: int) -> ProfileCallOutcome: ...


class OcpiProfileSink:
    def __init__(self, ctx: EmsContext) -> None:
        self.ctx = ctx

    def send_profile(self, session_pk: int, charging_profile: dict[str, Any]) -> ProfileCallOutcome:
        return profiles.send_charging_profile(self.ctx, session_pk, charging_profile)

    def clear_profile(self, session_pk: int) -> ProfileCallOutcome:
        return profiles.clear_profile(self.ctx, session_pk)


def limits_from(profile: dict[str, Any], at: datetime) -> list[tuple[float, float]]:
    """The profile as (seconds from `at`, limit) steps from `at` on: what it still commands."""
    start = parse_ocpi_datetime(profile["start_date_time"])
    offset = (at - start).total_seconds()
    periods = sorted(profile["charging_profile_period"], key=lambda p: p["start_period"])
    steps: list[tuple[float, float]] = []
    for i, period in enumerate(periods):
        end = periods[i + 1]["start_period"] if i + 1 < len(periods) else float("inf")
        if end <= offset:
            continue
        steps.append((max(0.0, period["start_period"] - offset), float(period["limit"])))
    return steps


def same_commands(old: dict[str, Any] | None, new: dict[str, Any], at: datetime) -> bool:
    """Whether `new` sets the same limits as `old` from `at` on (unit included)."""
    if old is None or old.get("charging_rate_unit") != new.get("charging_rate_unit"):
        return False
    return limits_from(old, at) == limits_from(new, at)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Dispatcher:
    """The outbox and its worker; `run_once` is the whole delivery step (tests and replay call it)."""

    def __init__(
        self,
        ctx: EmsContext,
        sink: ProfileSink,
        *,
        rate_per_s: float = 20.0,
        burst: int = 40,
        concurrency: int = 4,
    ) -> None:
        self.ctx = ctx
        self.sink = sink
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[int, _Bucket] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._random = random.Random()
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="dispatch-call")

    # ---- enqueueing ------------------------------------------------------------------------

    def enqueue_set(
        self, session_pk: int, charging_profile: dict[str, Any], plan_id: int | None = None
    ) -> bool:
        """Queue a profile unless it commands what the session already has; True if queued."""
        now = self.ctx.clock.now()
        with transaction(self.ctx.db) as db:
            session = db.get(ChargingSession, session_pk)
            if session is None or session.stale or session.status not in ACTIVE_STATUSES:
                return False
            last = db.scalars(
                select(ProfileOutbox)
                .where(
                    ProfileOutbox.session_pk == session_pk,
                    ProfileOutbox.state.not_in(("superseded", "dropped")),
                )
                .order_by(ProfileOutbox.id.desc())
            ).first()
            if last is not None and last.last_answer in ("REJECTED", "NOT_SUPPORTED"):
                return False  # the CPO said no for this session: recorded, and we stop asking
            delivered_or_queued = last.charging_profile if last is not None and last.kind == "set" else None
            if same_commands(delivered_or_queued, charging_profile, now):
                return False
            db.execute(
                update(ProfileOutbox)
                .where(ProfileOutbox.session_pk == session_pk, ProfileOutbox.state == "pending")
                .values(state="superseded")
            )
            db.add(
                ProfileOutbox(
                    session_pk=session_pk,
                    partner_id=session.partner_id,
                    plan_id=plan_id,
                    kind="set",
                    charging_profile=charging_profile,
                    state="pending",
                    next_attempt_at=now,
                )
            )
        self._wake.set()
        return True

    def enqueue_clear(self, session_pk: int) -> bool:
        """After a session ends: DELETE our profile if the CPO holds one; drop what is queued."""
        now = self.ctx.clock.now()
        with transaction(self.ctx.db) as db:
            session = db.get(ChargingSession, session_pk)
            if session is None:
                return False
            db.execute(
                update(ProfileOutbox)
                .where(ProfileOutbox.session_pk == session_pk, ProfileOutbox.state == "pending")
                .values(state="dropped")
            )
            holds = db.scalars(
                select(ProfileRequest.kind)
                .where(ProfileRequest.session_pk == session_pk, ProfileRequest.response_result == "ACCEPTED")
                .order_by(ProfileRequest.id.desc())
            ).first()
            if holds != "set" or session.stale:
                return False
            db.add(
                ProfileOutbox(
                    session_pk=session_pk,
                    partner_id=session.partner_id,
                    kind="clear",
                    state="pending",
                    next_attempt_at=now,
                )
            )
        self._wake.set()
        return True

    # ---- delivering ------------------------------------------------------------------------

    def _take_token(self, partner_id: int) -> bool:
        now = time.monotonic()
        bucket = self._buckets.setdefault(partner_id, _Bucket(float(self.burst), now))
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate_per_s)
        bucket.updated = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _backoff_s(self, attempts: int) -> float:
        base: float = min(RETRY_CAP_S, RETRY_BASE_S * 2.0 ** max(0, attempts - 1))
        return base * (0.5 + self._random.random() / 2)

    def run_once(self) -> int:
        """Deliver every due item (within the rate limits); returns how many calls were made.

        A session that never had a profile goes first (a car just plugged in waits for its limit
        while the others already have one), and calls run concurrently: a CPO's round trip, not
        our own work, is what takes the time.
        """
        now = self.ctx.clock.now()
        with self.ctx.db() as db:
            due = list(
                db.scalars(
                    select(ProfileOutbox)
                    .where(
                        ProfileOutbox.state.in_(("pending", "awaiting_result")),
                        ProfileOutbox.next_attempt_at <= now,
                    )
                    .order_by(ProfileOutbox.next_attempt_at, ProfileOutbox.id)
                    .limit(500)
                )
            )
            served = set(
                db.scalars(
                    select(ProfileOutbox.session_pk).where(
                        ProfileOutbox.session_pk.in_({item.session_pk for item in due}),
                        ProfileOutbox.state.in_(("awaiting_result", "done")),
                    )
                )
            )
        to_send = []
        for item in sorted(due, key=lambda item: item.session_pk in served):
            if item.state == "awaiting_result":
                self._expire(item.id)
            elif self._take_token(item.partner_id):
                to_send.append(item)
        if not to_send:
            return 0
        return sum(self._pool.map(self._deliver, to_send))

    def _deliver(self, item: ProfileOutbox) -> int:
        if not self._still_wanted(item):
            return 0
        outcome = (
            self.sink.send_profile(item.session_pk, item.charging_profile or {})
            if item.kind == "set"
            else self.sink.clear_profile(item.session_pk)
        )
        self._record(item.id, outcome)
        return 1

    def _still_wanted(self, item: ProfileOutbox) -> bool:
        with transaction(self.ctx.db) as db:
            row = db.get(ProfileOutbox, item.id)
            session = db.get(ChargingSession, item.session_pk)
            if row is None or row.state != "pending":
                return False
            if item.kind == "set" and (
                session is None or session.stale or session.status not in ACTIVE_STATUSES
            ):
                row.state = "dropped"
                return False
        return True

    def _record(self, outbox_id: int, outcome: ProfileCallOutcome) -> None:
        now = self.ctx.clock.now()
        with transaction(self.ctx.db) as db:
            row = db.get(ProfileOutbox, outbox_id)
            assert row is not None
            row.attempts += 1
            row.request_id = outcome.request_id
            row.last_answer = outcome.response_result
            row.last_error = outcome.error
            row.sent_at = now
            answer = outcome.response_result
            if answer == "ACCEPTED":
                result_arrived = db.scalar(
                    select(ProfileRequest.result).where(ProfileRequest.request_id == outcome.request_id)
                )
                row.state = "done" if result_arrived else "awaiting_result"
                row.next_attempt_at = now + timedelta(seconds=outcome.timeout_s or DEFAULT_RESULT_TIMEOUT_S)
            elif answer in ("REJECTED", "NOT_SUPPORTED"):
                row.state = "done"
            elif answer == "TOO_OFTEN":
                row.next_attempt_at = now + timedelta(seconds=TOO_OFTEN_DELAY_S)
            elif answer == "UNKNOWN_SESSION":
                row.state = "done"
                session = db.get(ChargingSession, row.session_pk)
                if session is not None:
                    session.stale = True
            else:
                row.next_attempt_at = now + timedelta(seconds=self._backoff_s(row.attempts))

    def _expire(self, outbox_id: int) -> None:
        """No asynchronous result within the CPO's timeout: OCPI says none will come."""
        with transaction(self.ctx.db) as db:
            row = db.get(ProfileOutbox, outbox_id)
            if row is not None and row.state == "awaiting_result":
                row.state = "done"
                row.last_error = "no result within the CPO's timeout"

    def on_event(self, event: DomainEvent) -> None:
        """An asynchronous result arrived: the outbox item is complete."""
        if isinstance(event, ChargingProfileOutcome) and event.asynchronous:
            with transaction(self.ctx.db) as db:
                db.execute(
                    update(ProfileOutbox)
                    .where(
                        ProfileOutbox.request_id == event.request_id, ProfileOutbox.state == "awaiting_result"
                    )
                    .values(state="done")
                )

    # ---- the worker thread -----------------------------------------------------------------

    def start(self) -> None:
        self._unsubscribe = self.ctx.bus.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._loop, name="dispatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("dispatch step failed")
            self._wake.wait(timeout=0.5)
            self._wake.clear()
