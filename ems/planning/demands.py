"""Which planning units (sites) need a plan, and who plans each: in this process, or shared.

The planner marks a unit dirty on every event that changes what its plan depends on, waits for
the burst to settle (`quiet_s` without a new mark, at most `max_wait_s` after the first) and
plans it once. Two keepers of that state, one interface:

- `LocalDemands`: in memory, one process (the demo, the replay, the tests, `ems serve` alone);
- `SharedDemands`: in the database (`planning_demand`), for several workers (`ems worker`). A
  worker claims a unit with a lease (`lease_s`, renewed while it plans), so a unit is planned by
  one worker at a time; a mark that arrives while it plans keeps the unit pending, so the plan
  after it sees that mark; a worker killed mid-plan stops renewing and another takes the unit
  once the lease runs out. Leases and coalescing use real UTC time (shared by machines);
  `replan_at`, a plan window's end, the EMS clock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Table, and_, bindparam, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from ems.core.events import SessionKey
from ems.store.cluster import PlanningDemand
from ems.store.db import transaction
from ems.store.models import ChargingPeriod


@dataclass(frozen=True)
class Claim:
    """A unit taken for planning: its triggers since the last claim, and what to release."""

    unit_id: str
    triggers: tuple[str, ...]
    triggered_at: datetime | None
    seq: int = 0


@dataclass(frozen=True)
class PhaseWait:
    """A session planned as three-phase before its first meter value (it may draw on one)."""

    key: SessionKey
    session_pk: int


class Demands(Protocol):
    def mark(self, unit_id: str, trigger: str) -> None: ...

    def mark_many(self, unit_ids: Iterable[str], trigger: str) -> None: ...

    def take(self, clock: Callable[[], datetime], wait_s: float) -> Claim | None:
        """A due unit, claimed; None if none became due within `wait_s` (`clock`: the EMS's)."""
        ...

    def done(self, claim: Claim) -> None: ...

    def planned(
        self,
        unit_id: str,
        window_end: datetime | None,
        phase_waits: Iterable[PhaseWait],
        planned_keys: Iterable[SessionKey],
        db: DbSession | None = None,
    ) -> None:
        """After any plan of the unit (claimed or direct): when to plan it again, and which of
        its sessions (`planned_keys`) to watch for their first meter values. Given `db`, the
        plan's own transaction: stored with the plan or not at all."""
        ...

    def phases_measured(self, key: SessionKey) -> bool:
        """A session's first meter values arrived: whether its unit should be planned again."""
        ...

    def replan_due(self, unit_id: str, clock_now: datetime) -> bool: ...

    def wake(self) -> None:
        """Make a `take` waiting now return (the planner is stopping)."""
        ...


@dataclass
class _Dirty:
    first_at: float
    last_at: float
    triggered_at: datetime
    triggers: set[str] = field(default_factory=set)


class LocalDemands:
    """In memory, for one process; `take` waits on a condition the marks notify."""

    def __init__(self, quiet_s: float, max_wait_s: float) -> None:
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self._dirty: dict[str, _Dirty] = {}
        self._window_ends: dict[str, datetime] = {}
        self._phases_unknown: set[SessionKey] = set()
        self._lock = threading.Condition()
        self._woken = False

    def mark(self, unit_id: str, trigger: str) -> None:
        now = time.monotonic()
        with self._lock:
            dirty = self._dirty.get(unit_id)
            if dirty is None:
                dirty = self._dirty[unit_id] = _Dirty(now, now, datetime.now(UTC))
            dirty.last_at = now
            dirty.triggers.add(trigger)
            self._lock.notify()

    def mark_many(self, unit_ids: Iterable[str], trigger: str) -> None:
        for unit_id in unit_ids:
            self.mark(unit_id, trigger)

    def _due(self, clock_now: datetime) -> Claim | None:
        for unit_id, window_end in list(self._window_ends.items()):
            if clock_now >= window_end:
                del self._window_ends[unit_id]
                self.mark(unit_id, "window_end")  # re-entrant: the Condition holds an RLock
        now = time.monotonic()
        for unit_id, dirty in self._dirty.items():
            if now - dirty.last_at >= self.quiet_s or now - dirty.first_at >= self.max_wait_s:
                del self._dirty[unit_id]
                return Claim(unit_id, tuple(sorted(dirty.triggers)), dirty.triggered_at)
        return None

    def take(self, clock: Callable[[], datetime], wait_s: float) -> Claim | None:
        deadline = time.monotonic() + wait_s
        with self._lock:
            while True:
                claim = self._due(clock())
                left_s = deadline - time.monotonic()
                if claim is not None or left_s <= 0 or self._woken:
                    self._woken = False
                    return claim
                self._lock.wait(timeout=min(left_s, self.quiet_s / 2 if self._dirty else left_s))

    def done(self, claim: Claim) -> None:
        return None

    def planned(
        self,
        unit_id: str,
        window_end: datetime | None,
        phase_waits: Iterable[PhaseWait],
        planned_keys: Iterable[SessionKey],
        db: DbSession | None = None,
    ) -> None:
        waiting = {w.key for w in phase_waits}
        with self._lock:
            if window_end is None:
                self._window_ends.pop(unit_id, None)
            else:
                self._window_ends[unit_id] = window_end
            self._phases_unknown.difference_update(set(planned_keys) - waiting)
            self._phases_unknown.update(waiting)

    def phases_measured(self, key: SessionKey) -> bool:
        with self._lock:
            waiting = key in self._phases_unknown
            self._phases_unknown.discard(key)
        return waiting

    def replan_due(self, unit_id: str, clock_now: datetime) -> bool:
        with self._lock:
            window_end = self._window_ends.get(unit_id)
        return window_end is not None and clock_now >= window_end

    def wake(self) -> None:
        with self._lock:
            self._woken = True
            self._lock.notify_all()


_DEMANDS: Table = PlanningDemand.__table__  # type: ignore[assignment]
_C = _DEMANDS.c


def wall_now() -> datetime:
    return datetime.now(UTC)


def _rowcount(result: Any) -> int:
    """Rows an UPDATE matched (a compare-and-set tells by it whether it won)."""
    return int(cast(CursorResult[Any], result).rowcount)


class SharedDemands:
    """In the database, for several workers; `holder` names this worker in its leases."""

    def __init__(
        self,
        db: sessionmaker[DbSession],
        holder: str,
        *,
        quiet_s: float,
        max_wait_s: float,
        lease_s: float,
        requeue_s: float = 10.0,
    ) -> None:
        self.db = db
        self.holder = holder
        self.quiet_s = quiet_s
        self.max_wait_s = max_wait_s
        self.lease_s = lease_s
        self.requeue_s = requeue_s
        self._wake = threading.Event()
        self._woken = threading.Event()
        self._marked: set[str] = set()
        self._marked_lock = threading.Lock()

    # ---- marks ------------------------------------------------------------------------------

    def mark(self, unit_id: str, trigger: str) -> None:
        self.mark_many([unit_id], trigger)

    def mark_many(self, unit_ids: Iterable[str], trigger: str) -> None:
        """Mark units dirty in one transaction (the schedule marks every unit at once)."""
        ids = sorted(set(unit_ids))  # one lock order for every writer: no deadlock between two
        if not ids:
            return
        now = wall_now()
        tag = f",{trigger[:30]},"
        with transaction(self.db) as db:
            existing = set(db.scalars(select(_C.unit_id).where(_C.unit_id.in_(ids))))
            for unit_id in ids:
                if unit_id not in existing and not self._insert(db, unit_id):
                    existing.add(unit_id)
            db.execute(
                update(_DEMANDS)
                .where(_C.unit_id.in_(ids))
                .values(
                    dirty_seq=_C.dirty_seq + 1,
                    pending=True,
                    last_dirty_wall=now,
                    first_dirty_wall=func.coalesce(_C.first_dirty_wall, now),
                    triggered_at=func.coalesce(_C.triggered_at, now),
                    triggers=case(
                        (_C.triggers.contains(tag, autoescape=True), _C.triggers),
                        (func.length(_C.triggers) > 200, _C.triggers),
                        else_=func.coalesce(func.nullif(_C.triggers, ""), ",") + tag[1:],
                    ),
                )
            )
        with self._marked_lock:
            self._marked.update(ids)
        self._wake.set()

    def _insert(self, db: DbSession, unit_id: str) -> bool:
        """A unit's first row; False if another writer inserted it first."""
        try:
            with db.begin_nested():
                db.execute(
                    _DEMANDS.insert().values(
                        unit_id=unit_id,
                        dirty_seq=0,
                        planned_seq=0,
                        pending=False,
                        triggers="",
                        phase_waits="",
                    )
                )
        except IntegrityError:
            return False
        return True

    # ---- claims -----------------------------------------------------------------------------

    def _due(self, clock_now: datetime) -> Any:
        """Due for a plan and not leased: marks settled (`quiet_s` without a new one, or
        `max_wait_s` since the first), or a plan window that ended."""
        now = wall_now()
        free = or_(_C.lease_until_wall.is_(None), _C.lease_until_wall < now)
        settled = and_(
            _C.pending.is_(True),
            or_(
                _C.last_dirty_wall <= now - timedelta(seconds=self.quiet_s),
                _C.first_dirty_wall <= now - timedelta(seconds=self.max_wait_s),
            ),
        )
        return and_(free, or_(settled, _C.replan_at <= clock_now))

    def due_units(self, clock_now: datetime, limit: int = 50) -> list[str]:
        with self.db() as db:
            return list(
                db.scalars(
                    select(_C.unit_id).where(self._due(clock_now)).order_by(_C.first_dirty_wall).limit(limit)
                )
            )

    def status(self, unit_id: str) -> tuple[bool, bool]:
        """(pending, leased by a live lease) of a unit."""
        with self.db() as db:
            row = db.execute(select(_C.pending, _C.lease_until_wall).where(_C.unit_id == unit_id)).first()
        if row is None:
            return False, False
        return bool(row.pending), row.lease_until_wall is not None and row.lease_until_wall >= wall_now()

    def drain_marked(self) -> list[str]:
        """The units this process marked since the last call (to send plan tasks for)."""
        with self._marked_lock:
            marked, self._marked = sorted(self._marked), set()
        return marked

    def claim(self, unit_id: str, clock_now: datetime) -> Claim | None:
        """Take `unit_id` if it is due and no live lease holds it."""
        now = wall_now()
        with transaction(self.db) as db:
            taken = _rowcount(
                db.execute(
                    update(_DEMANDS)
                    .where(_C.unit_id == unit_id, self._due(clock_now))
                    .values(lease_holder=self.holder, lease_until_wall=now + timedelta(seconds=self.lease_s))
                )
            )
            if taken != 1:
                return None
            row = db.execute(
                select(_C.dirty_seq, _C.triggers, _C.triggered_at, _C.replan_at, _C.pending).where(
                    _C.unit_id == unit_id
                )
            ).one()
            triggers = [t for t in row.triggers.split(",") if t]
            if row.replan_at is not None and row.replan_at <= clock_now:
                triggers.append("window_end")
            db.execute(
                update(_DEMANDS)
                .where(_C.unit_id == unit_id)
                .values(
                    triggers="", first_dirty_wall=None, triggered_at=None, replan_at=None, queued_wall=None
                )
            )
        return Claim(unit_id, tuple(sorted(set(triggers))) or ("sweep",), row.triggered_at, row.dirty_seq)

    def take(self, clock: Callable[[], datetime], wait_s: float) -> Claim | None:
        deadline = time.monotonic() + wait_s
        while True:
            clock_now = clock()
            for unit_id in self.due_units(clock_now):
                claim = self.claim(unit_id, clock_now)
                if claim is not None:
                    return claim
            left_s = deadline - time.monotonic()
            if left_s <= 0 or self._woken.is_set():
                self._woken.clear()
                return None
            self._wake.wait(timeout=min(left_s, max(0.02, self.quiet_s / 2)))
            self._wake.clear()

    def done(self, claim: Claim) -> None:
        """Release the lease; the unit stays pending if it was marked after the claim."""
        with transaction(self.db) as db:
            db.execute(
                update(_DEMANDS)
                .where(_C.unit_id == claim.unit_id, _C.lease_holder == self.holder)
                .values(
                    planned_seq=claim.seq,
                    pending=_C.dirty_seq > claim.seq,
                    lease_holder=None,
                    lease_until_wall=None,
                )
            )

    def renew(self) -> int:
        """Extend every lease this worker holds (its heartbeat); how many it holds."""
        with transaction(self.db) as db:
            return _rowcount(
                db.execute(
                    update(_DEMANDS)
                    .where(_C.lease_holder == self.holder)
                    .values(lease_until_wall=wall_now() + timedelta(seconds=self.lease_s))
                )
            )

    def to_queue(self, clock_now: datetime) -> list[str]:
        """Due units no plan task was sent for lately (lost on a broker restart, or sent to a
        worker that died); each is stamped as queued now."""
        now = wall_now()
        due = self.due_units(clock_now, limit=500)
        if not due:
            return []
        with transaction(self.db) as db:
            stale = list(
                db.scalars(
                    select(_C.unit_id).where(
                        _C.unit_id.in_(due),
                        or_(
                            _C.queued_wall.is_(None), _C.queued_wall < now - timedelta(seconds=self.requeue_s)
                        ),
                    )
                )
            )
            if stale:
                db.execute(update(_DEMANDS).where(_C.unit_id.in_(stale)).values(queued_wall=now))
        return stale

    def queued(self, unit_ids: Iterable[str]) -> None:
        ids = list(unit_ids)
        if ids:
            with transaction(self.db) as db:
                db.execute(update(_DEMANDS).where(_C.unit_id.in_(ids)).values(queued_wall=wall_now()))

    # ---- after a plan -----------------------------------------------------------------------

    def planned(
        self,
        unit_id: str,
        window_end: datetime | None,
        phase_waits: Iterable[PhaseWait],
        planned_keys: Iterable[SessionKey],
        db: DbSession | None = None,
    ) -> None:
        waits = ",".join(str(pk) for pk in sorted({w.session_pk for w in phase_waits}))
        if db is None:
            with transaction(self.db) as own:
                self._planned_in(own, unit_id, window_end, waits)
        else:
            self._planned_in(db, unit_id, window_end, waits)

    def _planned_in(self, db: DbSession, unit_id: str, window_end: datetime | None, waits: str) -> None:
        if not db.scalar(select(_C.unit_id).where(_C.unit_id == unit_id)):
            self._insert(db, unit_id)
        db.execute(
            update(_DEMANDS).where(_C.unit_id == unit_id).values(replan_at=window_end, phase_waits=waits)
        )

    def phases_measured(self, key: SessionKey) -> bool:
        return False  # found by `check_phase_waits`: the event may reach any worker

    def check_phase_waits(self) -> list[str]:
        """Mark the units whose watched sessions now have meter values; the units marked."""
        with self.db() as db:
            waiting = [
                (unit_id, [int(pk) for pk in pks.split(",")])
                for unit_id, pks in db.execute(select(_C.unit_id, _C.phase_waits).where(_C.phase_waits != ""))
            ]
            if not waiting:
                return []
            pks = sorted({pk for _, unit_pks in waiting for pk in unit_pks})
            metered = set(
                db.scalars(
                    select(ChargingPeriod.session_pk)
                    .where(ChargingPeriod.session_pk.in_(bindparam("pks", expanding=True)))
                    .distinct(),
                    {"pks": pks},
                )
            )
        units = [unit_id for unit_id, unit_pks in waiting if metered.intersection(unit_pks)]
        if units:
            with transaction(self.db) as db:
                for unit_id, unit_pks in waiting:
                    if unit_id in units:
                        left = ",".join(str(pk) for pk in unit_pks if pk not in metered)
                        db.execute(update(_DEMANDS).where(_C.unit_id == unit_id).values(phase_waits=left))
            self.mark_many(units, "phases_measured")
        return units

    def replan_due(self, unit_id: str, clock_now: datetime) -> bool:
        with self.db() as db:
            at = db.scalar(select(_C.replan_at).where(_C.unit_id == unit_id))
        return at is not None and clock_now >= at

    def wake(self) -> None:
        self._woken.set()
        self._wake.set()
