"""The per-CPO rate limit of profile calls: a token bucket per partner.

A CPO back-end that gets more calls a second than it can take answers TOO_OFTEN or times out,
and every SCSP of it suffers. One process keeps the bucket in memory (`LocalRateLimit`); the
workers of a cluster share one bucket per CPO in the database (`SharedRateLimit`), so the CPO
sees `rate_per_s` however many workers send.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from ems.store.cluster import DispatchRate
from ems.store.db import transaction


class RateLimit(Protocol):
    def take(self, partner_id: int, wanted: int) -> int:
        """Take up to `wanted` calls to the partner now; how many may be made."""
        ...


def _refilled(tokens: float, elapsed_s: float, rate_per_s: float, burst: int) -> float:
    return min(float(burst), tokens + max(0.0, elapsed_s) * rate_per_s)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class LocalRateLimit:
    """This process's buckets (one process sends every profile: the demo, the replay)."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[int, _Bucket] = {}

    def take(self, partner_id: int, wanted: int) -> int:
        now = time.monotonic()
        bucket = self._buckets.setdefault(partner_id, _Bucket(float(self.burst), now))
        bucket.tokens = _refilled(bucket.tokens, now - bucket.updated, self.rate_per_s, self.burst)
        bucket.updated = now
        granted = min(wanted, math.floor(bucket.tokens))
        bucket.tokens -= granted
        return max(0, granted)


class SharedRateLimit:
    """The cluster's buckets, a row per CPO taken under a row lock (real UTC time: workers run
    on several machines). Tokens taken for a profile another worker claimed first are lost, so
    the cluster may send a little under the rate, never over it."""

    def __init__(self, db: sessionmaker[DbSession], rate_per_s: float, burst: int) -> None:
        self.db = db
        self.rate_per_s = rate_per_s
        self.burst = burst

    def take(self, partner_id: int, wanted: int) -> int:
        if wanted <= 0:
            return 0
        now = datetime.now(UTC)
        with transaction(self.db) as db:
            row = self._locked(db, partner_id, now)
            tokens = _refilled(
                row.tokens, (now - row.updated_wall).total_seconds(), self.rate_per_s, self.burst
            )
            granted = min(wanted, math.floor(tokens))
            db.execute(
                update(DispatchRate)
                .where(DispatchRate.partner_id == partner_id)
                .values(tokens=tokens - granted, updated_wall=max(now, row.updated_wall))
            )
        return max(0, granted)

    def _locked(self, db: DbSession, partner_id: int, now: datetime) -> DispatchRate:
        query = select(DispatchRate).where(DispatchRate.partner_id == partner_id).with_for_update()
        row = db.scalars(query).one_or_none()
        if row is None:
            try:
                with db.begin_nested():
                    db.execute(
                        insert(DispatchRate).values(
                            partner_id=partner_id, tokens=float(self.burst), updated_wall=now
                        )
                    )
            except IntegrityError:
                pass  # another worker's first call: its row it is
            row = db.scalars(query.execution_options(populate_existing=True)).one()
        return row
