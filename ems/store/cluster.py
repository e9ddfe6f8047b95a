"""Tables of the distributed planner (issue #18): what replicas and workers share through the
database, which stays the truth when the broker loses a message or a worker dies.

- `domain_event`: every event an API replica published, until a worker has turned it into
  planning demands. The broker only carries "there are events"; a lost message costs the
  sweep interval, never the event.
- `planning_demand`: per planning unit (a site), how often it was marked dirty against how far
  it was planned, and the lease of the worker planning it now.
- `dispatch_rate`: each CPO's token bucket, shared by every worker's dispatcher.
- `cluster_job_run`: one row per run of a scheduled job and time slot, so that a job every
  worker schedules runs once per cluster.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ems.store.base import Base, utcnow


class DomainEventRecord(Base):
    __tablename__ = "domain_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlanningDemand(Base):
    """A planning unit's dirt and lease.

    `pending` is `dirty_seq > planned_seq`, kept as a column so the sweep finds the few pending
    units among thousands by an index. Times named `_wall` are real UTC time (leases and
    coalescing are between machines); `replan_at` is on the EMS clock (a plan window's end).
    """

    __tablename__ = "planning_demand"
    __table_args__ = (Index("ix_planning_demand_pending", "pending", "last_dirty_wall"),)

    unit_id: Mapped[str] = mapped_column(String(261), primary_key=True)
    """A site id (255 characters at most) or `group:` and a top-level group's id."""
    dirty_seq: Mapped[int] = mapped_column(Integer, default=0)
    planned_seq: Mapped[int] = mapped_column(Integer, default=0)
    pending: Mapped[bool] = mapped_column(Boolean, default=False)
    first_dirty_wall: Mapped[datetime | None]
    last_dirty_wall: Mapped[datetime | None]
    triggers: Mapped[str] = mapped_column(String(256), default="")
    """The triggers since the last claim, as `,a,b,` (the plan record's trigger)."""
    triggered_at: Mapped[datetime | None]
    lease_holder: Mapped[str | None] = mapped_column(String(96))
    lease_until_wall: Mapped[datetime | None]
    queued_wall: Mapped[datetime | None]
    """When a plan task was last sent for it: the sweep re-sends one only if that is long ago."""
    replan_at: Mapped[datetime | None]
    phase_waits: Mapped[str] = mapped_column(Text, default="")
    """Session pks (comma-separated) planned as three-phase before any meter value: the unit is
    planned again once one of them has one."""


class ClusterJobRun(Base):
    __tablename__ = "cluster_job_run"

    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    """The run's time slot: floor(unix time / the job's interval)."""
    holder: Mapped[str] = mapped_column(String(96))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)


class DispatchRate(Base):
    """A CPO's token bucket of profile calls (`ems.dispatch.rate.SharedRateLimit`)."""

    __tablename__ = "dispatch_rate"

    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id", ondelete="CASCADE"), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated_wall: Mapped[datetime]
