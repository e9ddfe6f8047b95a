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
- a per-CPO rate limit (a token bucket, `ems.dispatch.rate`: this process's, or the cluster's).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import Table, Update, bindparam, func, insert, select, update
from sqlalchemy.orm import Session as DbSession

from ems.core.context import EmsContext
from ems.core.events import ChargingProfileOutcome, DomainEvent
from ems.dispatch.rate import LocalRateLimit, RateLimit
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


@runtime_checkable
class BufferingSink(Protocol):
    """A sink that logs its requests in memory (the replay's in-process CPO): the dispatcher
    has them stored in the transaction that records the answers, before reading results."""

    def write_pending(self, db: DbSession) -> None: ...


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


@dataclass(frozen=True)
class _Item:
    """An outbox row due for delivery, as read (the row itself may change meanwhile)."""

    id: int
    session_pk: int
    partner_id: int
    kind: str
    charging_profile: dict[str, Any] | None
    state: str
    attempts: int


_OUTBOX: Table = ProfileOutbox.__table__  # type: ignore[assignment]
_SESSIONS: Table = ChargingSession.__table__  # type: ignore[assignment]
_REQUESTS: Table = ProfileRequest.__table__  # type: ignore[assignment]

# Statements of every plan's dispatch, built once: building SQLAlchemy expressions per call
# cost about as much as running them.
_SESSION_STATES = select(_SESSIONS.c.id, _SESSIONS.c.partner_id, _SESSIONS.c.stale, _SESSIONS.c.status).where(
    _SESSIONS.c.id.in_(bindparam("pks", expanding=True))
)
_LAST_QUEUED = select(
    _OUTBOX.c.session_pk, _OUTBOX.c.kind, _OUTBOX.c.last_answer, _OUTBOX.c.charging_profile
).where(
    _OUTBOX.c.id.in_(
        select(func.max(_OUTBOX.c.id))
        .where(
            _OUTBOX.c.session_pk.in_(bindparam("pks", expanding=True)),
            _OUTBOX.c.state.not_in(("superseded", "dropped")),
        )
        .group_by(_OUTBOX.c.session_pk)
    )
)
_SUPERSEDE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.session_pk.in_(bindparam("pks", expanding=True)), _OUTBOX.c.state == "pending")
    .values(state="superseded")
)
_INSERT_OUTBOX = insert(_OUTBOX)
_DUE = (
    select(
        _OUTBOX.c.id,
        _OUTBOX.c.session_pk,
        _OUTBOX.c.partner_id,
        _OUTBOX.c.kind,
        _OUTBOX.c.charging_profile,
        _OUTBOX.c.state,
        _OUTBOX.c.attempts,
    )
    .where(
        _OUTBOX.c.state.in_(("pending", "awaiting_result")),
        _OUTBOX.c.next_attempt_at <= bindparam("now"),
    )
    .order_by(_OUTBOX.c.next_attempt_at, _OUTBOX.c.id)
    .limit(500)
)
# Each session's states, filtered here: with the states in the WHERE clause SQLite searched
# the (state, due) index for eight sessions or more, every `done` row of the store (11 ms at
# 84k rows, against 0.05 ms by session; 5% of a year's replay).
_SESSION_OUTBOX_STATES = (
    select(_OUTBOX.c.session_pk, _OUTBOX.c.state)
    .where(_OUTBOX.c.session_pk.in_(bindparam("pks", expanding=True)))
    .distinct()
)
_SERVED_STATES = frozenset(("awaiting_result", "done"))
CLAIM_S = 120.0
"""How long a row claimed for a call is hidden from the other dispatchers (longer than a call
with its retries of connection); a dispatcher that dies mid-call releases it when this ends."""
# Claiming: of the rows chosen to send, those still pending and due, locked by no other
# dispatcher (PostgreSQL skips rows another transaction holds; SQLite has one writer anyway),
# are pushed past `CLAIM_S`: no other dispatcher sends them, so no profile goes out twice.
_CLAIM = (
    update(_OUTBOX)
    .where(
        _OUTBOX.c.id.in_(
            select(_OUTBOX.c.id)
            .where(
                _OUTBOX.c.id.in_(bindparam("ids", expanding=True)),
                _OUTBOX.c.state == "pending",
                _OUTBOX.c.next_attempt_at <= bindparam("now"),
            )
            .with_for_update(skip_locked=True)
        )
    )
    .values(next_attempt_at=bindparam("claimed_until"))
    .returning(_OUTBOX.c.id)
)
_OUTBOX_STATES = select(_OUTBOX.c.id, _OUTBOX.c.state).where(
    _OUTBOX.c.id.in_(bindparam("ids", expanding=True))
)
_DROP = update(_OUTBOX).where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True))).values(state="dropped")
_RESULTS = select(_REQUESTS.c.request_id, _REQUESTS.c.result).where(
    _REQUESTS.c.request_id.in_(bindparam("request_ids", expanding=True))
)
_MARK_STALE = update(_SESSIONS).where(_SESSIONS.c.id.in_(bindparam("pks", expanding=True))).values(stale=True)
_EXPIRE = (
    update(_OUTBOX)
    .where(_OUTBOX.c.id.in_(bindparam("ids", expanding=True)), _OUTBOX.c.state == "awaiting_result")
    .values(state="done", last_error="no result within the CPO's timeout")
)


def _recorded(state: bool, next_attempt: bool) -> Update:
    """An answer stored on its outbox row; only the columns the answer changes are written
    (a row superseded while its call was in flight stays superseded)."""
    values: dict[str, Any] = {
        "attempts": _OUTBOX.c.attempts + 1,
        "request_id": bindparam("b_request_id"),
        "last_answer": bindparam("b_answer"),
        "last_error": bindparam("b_error"),
        "sent_at": bindparam("b_sent_at"),
    }
    if state:
        values["state"] = bindparam("b_state")
    if next_attempt:
        values["next_attempt_at"] = bindparam("b_next")
    return update(_OUTBOX).where(_OUTBOX.c.id == bindparam("b_id")).values(**values)


_RECORD_ACCEPTED = _recorded(state=True, next_attempt=True)
_RECORD_FINAL = _recorded(state=True, next_attempt=False)
_RECORD_RETRY = _recorded(state=False, next_attempt=True)


def complete_on_result(ctx: EmsContext, event: DomainEvent) -> None:
    """An asynchronous result arrived: its outbox item is complete (in whichever process got it)."""
    if isinstance(event, ChargingProfileOutcome) and event.asynchronous:
        with transaction(ctx.db) as db:
            db.execute(
                update(ProfileOutbox)
                .where(ProfileOutbox.request_id == event.request_id, ProfileOutbox.state == "awaiting_result")
                .values(state="done")
            )


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
        rate_limit: RateLimit | None = None,
    ) -> None:
        self.ctx = ctx
        self.sink = sink
        self.rate_limit = rate_limit or LocalRateLimit(rate_per_s, burst)
        """Calls a second per CPO: `rate_per_s` and `burst` for this process, unless given."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._random = random.Random()
        self.concurrency = concurrency
        self._pool: ThreadPoolExecutor | None = None

    # ---- enqueueing ------------------------------------------------------------------------

    def enqueue_set(
        self, session_pk: int, charging_profile: dict[str, Any], plan_id: int | None = None
    ) -> bool:
        """Queue a profile unless it commands what the session already has; True if queued."""
        return session_pk in self.enqueue_sets({session_pk: charging_profile}, plan_id)

    def enqueue_sets(
        self, profiles_by_pk: Mapping[int, dict[str, Any]], plan_id: int | None = None
    ) -> set[int]:
        """`enqueue_set` for a whole plan in one transaction; the sessions queued."""
        with transaction(self.ctx.db) as db:
            queued = self.enqueue_sets_in(db, profiles_by_pk, plan_id)
        if queued:
            self._wake.set()
        return queued

    def enqueue_sets_in(
        self, db: DbSession, profiles_by_pk: Mapping[int, dict[str, Any]], plan_id: int | None = None
    ) -> set[int]:
        """`enqueue_sets` inside the caller's transaction (the planner's, with its plan record):
        a fixed number of statements for any number of sessions. Call `wake` after the commit."""
        if not profiles_by_pk:
            return set()
        now = self.ctx.clock.now()
        pks = list(profiles_by_pk)
        sessions = {
            pk: (partner_id, stale, status)
            for pk, partner_id, stale, status in db.execute(_SESSION_STATES, {"pks": pks})
        }
        last = {
            session_pk: (kind, answer, profile)
            for session_pk, kind, answer, profile in db.execute(_LAST_QUEUED, {"pks": pks})
        }
        queued: list[int] = []
        for pk, charging_profile in profiles_by_pk.items():
            session = sessions.get(pk)
            if session is None or session[1] or session[2] not in ACTIVE_STATUSES:
                continue
            kind, answer, delivered = last.get(pk, (None, None, None))
            if answer in ("REJECTED", "NOT_SUPPORTED"):
                continue  # the CPO said no for this session: recorded, and we stop asking
            if same_commands(delivered if kind == "set" else None, charging_profile, now):
                continue
            queued.append(pk)
        if not queued:
            return set()
        db.execute(_SUPERSEDE, {"pks": queued})
        db.execute(
            _INSERT_OUTBOX,
            [
                {
                    "session_pk": pk,
                    "partner_id": sessions[pk][0],
                    "plan_id": plan_id,
                    "kind": "set",
                    "charging_profile": profiles_by_pk[pk],
                    "state": "pending",
                    "next_attempt_at": now,
                }
                for pk in queued
            ],
        )
        return set(queued)

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

    def _within_rate(self, items: list[_Item]) -> list[_Item]:
        """The first items of each CPO that its rate limit lets through now, in order."""
        wanted: dict[int, int] = {}
        for item in items:
            wanted[item.partner_id] = wanted.get(item.partner_id, 0) + 1
        left = {partner_id: self.rate_limit.take(partner_id, n) for partner_id, n in wanted.items()}
        through = []
        for item in items:
            if left[item.partner_id] > 0:
                left[item.partner_id] -= 1
                through.append(item)
        return through

    def _backoff_s(self, attempts: int) -> float:
        base: float = min(RETRY_CAP_S, RETRY_BASE_S * 2.0 ** max(0, attempts - 1))
        return base * (0.5 + self._random.random() / 2)

    def run_once(self) -> int:
        """Deliver every due item (within the rate limits); returns how many calls were made.

        A session that never had a profile goes first (a car just plugged in waits for its limit
        while the others already have one), and calls run concurrently: a CPO's round trip, not
        our own work, is what takes the time. Our own work is batched: one transaction checks
        that every item is still wanted, one records every answer (an in-process sink, or a
        dispatcher of concurrency 1, is called in this thread). An in-process sink makes no
        round trip at all: its whole step is one transaction (three were a tenth of a replay).
        """
        if isinstance(self.sink, BufferingSink):
            with transaction(self.ctx.db) as db:

                def shared() -> AbstractContextManager[DbSession]:
                    return nullcontext(db)

                made, failures = self._deliver(shared, shared)
        else:
            made, failures = self._deliver(self.ctx.db, lambda: transaction(self.ctx.db))
        if failures:
            raise failures[0]
        return made

    def _deliver(
        self,
        reading: Callable[[], AbstractContextManager[DbSession]],
        writing: Callable[[], AbstractContextManager[DbSession]],
    ) -> tuple[int, list[Exception]]:
        """`run_once`'s step, its statements in the sessions the two factories give; returns
        the calls made and the sink's exceptions (raised by the caller, after the records)."""
        now = self.ctx.clock.now()
        with reading() as db:
            due = [_Item(*row) for row in db.execute(_DUE, {"now": now})]
            if not due:
                return 0, []
            pks = list({item.session_pk for item in due})
            served = {
                pk
                for pk, state in db.execute(_SESSION_OUTBOX_STATES, {"pks": pks})
                if state in _SERVED_STATES
            }
        ordered = sorted(due, key=lambda item: item.session_pk in served)
        expired = [item.id for item in ordered if item.state == "awaiting_result"]
        to_send = self._within_rate([item for item in ordered if item.state != "awaiting_result"])
        if expired:
            with writing() as db:
                db.execute(_EXPIRE, {"ids": expired})
        if not to_send:
            return 0, []
        with writing() as db:
            if not isinstance(self.sink, BufferingSink):
                claimed = set(
                    db.scalars(
                        _CLAIM,
                        {
                            "ids": [item.id for item in to_send],
                            "now": now,
                            "claimed_until": now + timedelta(seconds=CLAIM_S),
                        },
                    )
                )
                to_send = [item for item in to_send if item.id in claimed]
            wanted = self._still_wanted(db, to_send)
        if not wanted:
            return 0, []
        if self.concurrency <= 1 or len(wanted) == 1:
            calls = [self._call(item) for item in wanted]
        else:
            calls = list(self._executor().map(self._call, wanted))
        outcomes = [(item, outcome) for item, (outcome, _) in zip(wanted, calls, strict=True) if outcome]
        if outcomes or isinstance(self.sink, BufferingSink):
            with writing() as db:
                if isinstance(self.sink, BufferingSink):
                    # Its requests first: the answers are checked against their results.
                    self.sink.write_pending(db)
                if outcomes:
                    self._record(db, outcomes)
        return len(wanted), [error for _, error in calls if error is not None]

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="dispatch-call")
        return self._pool

    def _call(self, item: _Item) -> tuple[ProfileCallOutcome | None, Exception | None]:
        """One call to the sink; a sink that raises is reported after the others are recorded."""
        try:
            outcome = (
                self.sink.send_profile(item.session_pk, item.charging_profile or {})
                if item.kind == "set"
                else self.sink.clear_profile(item.session_pk)
            )
        except Exception as exc:
            return None, exc
        return outcome, None

    def _still_wanted(self, db: DbSession, items: list[_Item]) -> list[_Item]:
        """The items still pending; a `set` for a session that ended or went stale is dropped."""
        states = {
            outbox_id: state
            for outbox_id, state in db.execute(_OUTBOX_STATES, {"ids": [item.id for item in items]})
        }
        sessions = {
            pk: (stale, status)
            for pk, _, stale, status in db.execute(
                _SESSION_STATES, {"pks": list({item.session_pk for item in items})}
            )
        }
        wanted: list[_Item] = []
        dropped: list[int] = []
        for item in items:
            if states.get(item.id) != "pending":
                continue
            session = sessions.get(item.session_pk)
            if item.kind == "set" and (session is None or session[0] or session[1] not in ACTIVE_STATUSES):
                dropped.append(item.id)
                continue
            wanted.append(item)
        if dropped:
            db.execute(_DROP, {"ids": dropped})
        return wanted

    def _record(self, db: DbSession, outcomes: list[tuple[_Item, ProfileCallOutcome]]) -> None:
        now = self.ctx.clock.now()
        accepted = [o.request_id for _, o in outcomes if o.response_result == "ACCEPTED"]
        batches: dict[Update, list[dict[str, Any]]] = {}
        stale: list[int] = []
        results_arrived = (
            {rid for rid, result in db.execute(_RESULTS, {"request_ids": accepted}) if result}
            if accepted
            else set()
        )
        for item, outcome in outcomes:
            values: dict[str, Any] = {
                "b_id": item.id,
                "b_request_id": outcome.request_id,
                "b_answer": outcome.response_result,
                "b_error": outcome.error,
                "b_sent_at": now,
            }
            answer = outcome.response_result
            if answer == "ACCEPTED":
                values["b_state"] = "done" if outcome.request_id in results_arrived else "awaiting_result"
                values["b_next"] = now + timedelta(seconds=outcome.timeout_s or DEFAULT_RESULT_TIMEOUT_S)
                statement = _RECORD_ACCEPTED
            elif answer in ("REJECTED", "NOT_SUPPORTED", "UNKNOWN_SESSION"):
                values["b_state"] = "done"
                statement = _RECORD_FINAL
                if answer == "UNKNOWN_SESSION":
                    stale.append(item.session_pk)
            elif answer == "TOO_OFTEN":
                values["b_next"] = now + timedelta(seconds=TOO_OFTEN_DELAY_S)
                statement = _RECORD_RETRY
            else:
                values["b_next"] = now + timedelta(seconds=self._backoff_s(item.attempts + 1))
                statement = _RECORD_RETRY
            if statement is _RECORD_RETRY:
                self.ctx.metrics.dispatch_retries.labels(str(item.partner_id)).inc()
            logger.info(
                "%s profile of session %d: %s",
                item.kind,
                item.session_pk,
                answer or outcome.error,
                extra={
                    "session_pk": item.session_pk,
                    "partner_id": item.partner_id,
                    "request_id": outcome.request_id,
                    "result": answer,
                },
            )
            batches.setdefault(statement, []).append(values)
        for statement, rows in batches.items():
            db.execute(statement, rows)
        if stale:
            db.execute(_MARK_STALE, {"pks": stale})

    def on_event(self, event: DomainEvent) -> None:
        complete_on_result(self.ctx, event)

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
        if self._pool is not None:
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
