"""Tables of the planning loop: needs estimates, forecast series, plans, the profile outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ems.store.base import Base, utcnow


class SessionNeed(Base):
    """What a session still needs, as estimated at one moment, each figure with its source.

    Sources: energy `declared` | `soc` | `token_history` | `site_history` | `site_default` |
    `still_drawing` (its estimate met, it still draws all it may: raised) | `stopped_full` (it
    stopped drawing while allowed: nothing more from the grid); departure
    `declared` | `token_history` | `site_history` | `site_default` | `overdue`; max power
    `learned` | `connector`; phases `learned` | `connector`; capacity `declared` | `learned` | `unknown`.
    """

    __tablename__ = "session_need"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_pk: Mapped[int] = mapped_column(ForeignKey("charging_session.id", ondelete="CASCADE"), index=True)
    estimated_at: Mapped[datetime]
    energy_needed_kwh: Mapped[float] = mapped_column(Float)
    """Still to deliver from `estimated_at` on, by the estimate."""
    energy_extra_kwh: Mapped[float] = mapped_column(Float, server_default="0")
    """What the plan offered it beyond its planned need from PV surplus only (`ems.planning.needs`)."""
    energy_source: Mapped[str] = mapped_column(String(16))
    departure: Mapped[datetime]
    departure_source: Mapped[str] = mapped_column(String(16))
    max_power_kw: Mapped[float | None] = mapped_column(Float)
    max_power_source: Mapped[str] = mapped_column(String(16))
    vehicle_phases: Mapped[int]
    phases_source: Mapped[str] = mapped_column(String(16))
    battery_capacity_kwh: Mapped[float | None] = mapped_column(Float)
    capacity_source: Mapped[str] = mapped_column(String(16))


class SeriesPoint(Base):
    """One interval of a site's forecast or measured series (formats §2), as imported."""

    __tablename__ = "series_point"
    __table_args__ = (UniqueConstraint("site_id", "timestamp"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(String(255), index=True)  # as long as site.id
    timestamp: Mapped[datetime]
    pv_kw: Mapped[float | None] = mapped_column(Float)
    price_eur_per_kwh: Mapped[float | None] = mapped_column(Float)
    base_load_kw: Mapped[float | None] = mapped_column(Float)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class PlanRecord(Base):
    """One run of the optimizer for a site: what went in (digest, site version) and what came out."""

    __tablename__ = "plan_record"
    __table_args__ = (Index("ix_plan_record_site_created", "site_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(String(255))  # as long as site.id
    site_version: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    planned_for: Mapped[datetime]
    """The plan's `now` (the clock's time, simulated in a demo or replay)."""
    trigger: Mapped[str] = mapped_column(String(32))
    triggered_at: Mapped[datetime | None]
    """Wall-clock time of the earliest event this plan answers (event-to-profile latency)."""
    inputs_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(24))
    objective: Mapped[str] = mapped_column(String(64))
    message: Mapped[str | None] = mapped_column(Text)
    n_sessions: Mapped[int]
    build_ms: Mapped[float] = mapped_column(Float)
    solve_ms: Mapped[float] = mapped_column(Float)
    total_ms: Mapped[float] = mapped_column(Float)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Per session: power per step, energy planned, unmet energy, the profile; totals per step."""


class ProfileOutbox(Base):
    """A charging profile to deliver to a CPO, kept until the CPO has answered for it.

    `state`: `pending` (to send, possibly after `next_attempt_at`), `awaiting_result` (ACCEPTED,
    waiting for the asynchronous result), `done` (result or a final answer stored), `superseded`
    (a newer profile for the session replaced it before delivery), `dropped` (the session ended).
    `kind`: `set` or `clear`.
    """

    __tablename__ = "profile_outbox"
    __table_args__ = (Index("ix_profile_outbox_state_due", "state", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_pk: Mapped[int] = mapped_column(ForeignKey("charging_session.id", ondelete="CASCADE"), index=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id", ondelete="CASCADE"))
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("plan_record.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(8))
    charging_profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    request_id: Mapped[str | None] = mapped_column(String(36))
    """The ProfileRequest of the last attempt (its answers live there)."""
    last_answer: Mapped[str | None] = mapped_column(String(24))
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
