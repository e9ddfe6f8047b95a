"""Typed SQLAlchemy 2 models: what the EMS knows and keeps.

OCPI objects are stored as their columns of interest plus the whole object as pushed (`data`),
so a GET returns exactly what the CPO sent and nothing is lost for later modules.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ems.store.base import Base, utcnow


class Partner(Base):
    """An OCPI party (a CPO back-end) and the credentials both ways.

    `token_incoming` is what the partner presents to us (issued by us: token C, or B when we
    initiated); `token_outgoing` is what we present to it. `token_a` is the invitation we handed
    out and stops working once the partner has registered.
    """

    __tablename__ = "partner"

    id: Mapped[int] = mapped_column(primary_key=True)
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    role: Mapped[str] = mapped_column(String(8))
    business_name: Mapped[str | None] = mapped_column(String(100))
    roles: Mapped[list[Any]] = mapped_column(default=list)
    """Every CredentialsRole the partner declared."""
    status: Mapped[str] = mapped_column(String(16), default="INVITED")
    """INVITED (token A handed out), REGISTERED, UNREGISTERED."""
    versions_url: Mapped[str | None] = mapped_column(String(255))
    version: Mapped[str | None] = mapped_column(String(8))
    endpoints: Mapped[list[Any]] = mapped_column(default=list)
    token_a_sha256: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    token_a: Mapped[str | None] = mapped_column(String(64))
    token_incoming_sha256: Mapped[str | None] = mapped_column(String(64), index=True, unique=True)
    token_incoming: Mapped[str | None] = mapped_column(String(64))
    token_outgoing: Mapped[str | None] = mapped_column(String(64))
    token_encoding: Mapped[str] = mapped_column(String(8), default="base64")
    """How we send our token to this partner: `base64` (OCPI 2.2.1) or `raw` (older peers)."""
    meter_id_preferences: Mapped[bool] = mapped_column(Boolean, default=False)
    """Parse driver preferences out of Session.meter_id (a deployment workaround)."""
    last_sync_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def endpoint_url(self, module: str, role: str | None = None) -> str | None:
        for endpoint in self.endpoints:
            if endpoint.get("identifier") == module and (role is None or endpoint.get("role") == role):
                return str(endpoint["url"])
        return None


class Location(Base):
    __tablename__ = "location"
    __table_args__ = (UniqueConstraint("partner_id", "country_code", "party_id", "location_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id", ondelete="CASCADE"))
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    location_id: Mapped[str] = mapped_column(String(36))
    time_zone: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]]
    """The Location as pushed, without its EVSEs (they live in `evse`)."""
    last_updated: Mapped[datetime]

    evses: Mapped[list[Evse]] = relationship(
        back_populates="location", cascade="all, delete-orphan", order_by="Evse.position"
    )


class Evse(Base):
    __tablename__ = "evse"
    __table_args__ = (UniqueConstraint("location_pk", "uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    location_pk: Mapped[int] = mapped_column(ForeignKey("location.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    uid: Mapped[str] = mapped_column(String(36), index=True)
    evse_id: Mapped[str | None] = mapped_column(String(48))
    status: Mapped[str] = mapped_column(String(16))
    capabilities: Mapped[list[Any]] = mapped_column(default=list)
    data: Mapped[dict[str, Any]]
    """The EVSE as pushed, without its connectors."""
    last_updated: Mapped[datetime]

    location: Mapped[Location] = relationship(back_populates="evses")
    connectors: Mapped[list[Connector]] = relationship(
        back_populates="evse", cascade="all, delete-orphan", order_by="Connector.position"
    )


class Connector(Base):
    __tablename__ = "connector"
    __table_args__ = (UniqueConstraint("evse_pk", "connector_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    evse_pk: Mapped[int] = mapped_column(ForeignKey("evse.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(default=0)
    connector_id: Mapped[str] = mapped_column(String(36))
    standard: Mapped[str] = mapped_column(String(32))
    power_type: Mapped[str] = mapped_column(String(16))
    max_voltage: Mapped[int] = mapped_column(Integer)
    max_amperage: Mapped[int] = mapped_column(Integer)
    max_electric_power: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[dict[str, Any]]
    last_updated: Mapped[datetime]

    evse: Mapped[Evse] = relationship(back_populates="connectors")


class ChargingSession(Base):
    """An OCPI Session, keyed by (partner, country_code, party_id, id): ids are unique per CPO only."""

    __tablename__ = "charging_session"
    __table_args__ = (
        UniqueConstraint("partner_id", "country_code", "party_id", "session_id"),
        Index("ix_charging_session_status", "status"),
        # A site's active sessions, found from its EVSEs: a plan reads only its own site's.
        Index("ix_charging_session_evse_status", "evse_uid", "status"),
        # A token's history: its completed sessions at a partner, latest first, without a sort
        # and without reading any other token's.
        Index("ix_charging_session_token_history", "partner_id", "token_uid", "status", "start_date_time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id", ondelete="CASCADE"))
    country_code: Mapped[str] = mapped_column(String(2))
    party_id: Mapped[str] = mapped_column(String(3))
    session_id: Mapped[str] = mapped_column(String(36))
    start_date_time: Mapped[datetime]
    end_date_time: Mapped[datetime | None]
    kwh: Mapped[float] = mapped_column(Float)
    cdr_token: Mapped[dict[str, Any]]
    token_uid: Mapped[str | None] = mapped_column(String(36))
    """`cdr_token.uid`, copied by the receiver so a token's history is an index range, not a
    scan of the JSON of every session."""
    auth_method: Mapped[str] = mapped_column(String(16))
    authorization_reference: Mapped[str | None] = mapped_column(String(36))
    location_id: Mapped[str] = mapped_column(String(36))
    evse_uid: Mapped[str] = mapped_column(String(36))
    connector_id: Mapped[str] = mapped_column(String(36))
    meter_id: Mapped[str | None] = mapped_column(String(255))
    currency: Mapped[str] = mapped_column(String(3))
    total_cost: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    last_updated: Mapped[datetime]
    extra: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Fields of the pushed Session this version of OCPI does not define, kept verbatim."""
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    """The CPO answered UNKNOWN_SESSION: stop sending profiles for it."""
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Counts the changes the receiver applied to the session, its periods and its preferences:
    what a planner keeps of a past session is current while the revision is the same."""

    charging_periods: Mapped[list[ChargingPeriod]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="ChargingPeriod.position"
    )


class ChargingPeriod(Base):
    __tablename__ = "charging_period"
    __table_args__ = (UniqueConstraint("session_pk", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    session_pk: Mapped[int] = mapped_column(ForeignKey("charging_session.id", ondelete="CASCADE"))
    position: Mapped[int]
    start_date_time: Mapped[datetime]
    dimensions: Mapped[list[Any]]
    tariff_id: Mapped[str | None] = mapped_column(String(36))

    session: Mapped[ChargingSession] = relationship(back_populates="charging_periods")


class ChargingPreference(Base):
    """A driver's stated preferences; every statement kept, the latest one counts."""

    __tablename__ = "charging_preference"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_pk: Mapped[int] = mapped_column(ForeignKey("charging_session.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(16))
    """`ocpi` (charging_preferences extension), `driver` (widget), `meter_id` (partner workaround)."""
    profile_type: Mapped[str] = mapped_column(String(16))
    departure_time: Mapped[datetime | None]
    energy_need_kwh: Mapped[float | None] = mapped_column(Float)
    discharge_allowed: Mapped[bool | None] = mapped_column(Boolean)
    soc_arrival_pct: Mapped[float | None] = mapped_column(Float)
    target_soc_pct: Mapped[float | None] = mapped_column(Float)
    battery_capacity_kwh: Mapped[float | None] = mapped_column(Float)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProfileRequest(Base):
    """One call we made to a CPO's chargingprofiles receiver, and everything it came back with.

    `request_id` is the unique id inside the `response_url` handed out: the asynchronous result
    carries no session id, so this row is how it finds its way back.
    """

    __tablename__ = "profile_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(36), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id", ondelete="CASCADE"))
    session_pk: Mapped[int | None] = mapped_column(
        ForeignKey("charging_session.id", ondelete="SET NULL"), index=True
    )
    session_id: Mapped[str] = mapped_column(String(36))
    """The session id in the CPO's platform, as used in the URL."""
    kind: Mapped[str] = mapped_column(String(8))
    """`set` (PUT SetChargingProfile), `get` (GET ActiveChargingProfile), `clear` (DELETE)."""
    charging_profile: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    duration_s: Mapped[int | None]
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)
    http_status: Mapped[int | None]
    ocpi_status_code: Mapped[int | None]
    response_result: Mapped[str | None] = mapped_column(String(16))
    """ChargingProfileResponseType: ACCEPTED, NOT_SUPPORTED, REJECTED, TOO_OFTEN, UNKNOWN_SESSION."""
    response_timeout_s: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str | None] = mapped_column(String(16))
    """ChargingProfileResultType of the asynchronous callback: ACCEPTED, REJECTED, UNKNOWN."""
    result_body: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    result_at: Mapped[datetime | None]


class ActiveProfileReport(Base):
    """An ActiveChargingProfile the CPO pushed, or returned to a GET: what the station really applies."""

    __tablename__ = "active_profile_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id", ondelete="CASCADE"))
    session_pk: Mapped[int | None] = mapped_column(
        ForeignKey("charging_session.id", ondelete="SET NULL"), index=True
    )
    session_id: Mapped[str] = mapped_column(String(36))
    source: Mapped[str] = mapped_column(String(8))
    """`push` (CPO PUT) or `get` (answer to our GET)."""
    start_date_time: Mapped[datetime]
    charging_profile: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class Site(Base):
    """A site drawn by the administrator. Every change stores a new `SiteVersion` and never
    rewrites an old one, so a plan can name the exact wiring it was computed on.

    Deleting a site only marks it (`deleted_at`): its versions stay readable for old plans, and
    importing the same id again continues its numbering instead of reusing version numbers.
    """

    __tablename__ = "site"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    """The site file's `id`."""
    current_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class SiteVersion(Base):
    __tablename__ = "site_version"
    __table_args__ = (UniqueConstraint("site_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("site.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    """1, 2, ... per site."""
    data: Mapped[dict[str, Any]]
    """The whole site file, exactly as `grid_models.site_to_dict` writes it."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    comment: Mapped[str | None] = mapped_column(Text)
    author: Mapped[str | None] = mapped_column(String(100))


class AdminUser(Base):
    """Someone who may log in to the admin pages; only a scrypt hash of the password is kept."""

    __tablename__ = "admin_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    """`scrypt$n$r$p$salt_b64$hash_b64` (see `ems.admin.users`)."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]


class LoginFailure(Base):
    """A failed admin log-in, by username or client address: in the database, so that the
    throttle holds across every API replica (`ems.admin.users.LoginThrottle`)."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AppSecret(Base):
    """Secrets the EMS generates once and keeps (the key signing driver links and admin cookies
    when `EMS_SECRET_KEY` is unset), so links and logins survive a restart."""

    __tablename__ = "app_secret"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ServerSetting(Base):
    """What a server started on this database publishes for the other commands on it: the public
    URL it advertises, so `ems partner invite` run in another shell prints a versions URL that
    reaches that server."""

    __tablename__ = "server_setting"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(2048))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
