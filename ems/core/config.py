"""One settings object for the whole service, read from `EMS_*` environment variables."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ems.core.clock import Clock, RealClock, ScaledClock


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMS_", extra="ignore")

    database_url: str = "sqlite:///./ems.db"
    """Any SQLAlchemy URL; a SQLite file in the working folder by default."""

    public_url: str = "http://127.0.0.1:8000"
    """Where partners reach this EMS: the base of the versions URL and of every `response_url`."""

    country_code: str = Field(default="FR", min_length=2, max_length=2)
    party_id: str = Field(default="SCS", min_length=3, max_length=3)
    business_name: str = "Open Smart Charging EMS"

    pull_interval_s: float = 3600.0
    """How often the scheduler pulls each CPO's Sessions and Locations (OCPI advises hours)."""

    plan_interval_s: float = 900.0
    """Every site is re-planned this often even without events (drift, forecasts, meter values)."""

    plan_strategy: str = "optimized"
    """What plans (EMS_PLAN_STRATEGY): the optimizer, or one of the rule-based baselines of
    `ems.planning.strategies` (e.g. `uncontrolled`), to compare SCSPs on one bench (`ems scsp-bench`)."""

    dispatch_rate_per_s: float = Field(default=20.0, gt=0)
    """Profile calls a second to each CPO at most (EMS_DISPATCH_RATE_PER_S), however many workers
    a cluster runs: they share one bucket per CPO in the database."""
    dispatch_burst: int = Field(default=40, ge=1)
    """Calls a CPO may get at once after a quiet while, within its rate."""

    http_timeout_s: float = 10.0
    max_body_bytes: int = 1_000_000
    request_body_timeout_s: float = Field(default=30.0, gt=0)
    """How long the body of a request may take to arrive, once its headers did (HTTP 408 past it)."""

    sqlite_synchronous: str = "NORMAL"
    """SQLite durability. With WAL, NORMAL keeps every acknowledged write through any crash or kill
    of the EMS process; FULL also through a power loss or OS crash, at one fsync per request."""

    database_timeout_s: float = Field(default=30.0, gt=0)
    """How long a request waits for the database (a write lock, a connection) before the EMS
    answers OCPI 3000 with HTTP 503 and the CPO retries; nothing is acknowledged unstored."""

    clock_start: datetime | None = None
    """Run on simulated time from this instant (demo); unset means real time."""
    clock_speed: float = Field(default=1.0, gt=0)
    clock_real_start_unix_s: float | None = None
    """The real instant `clock_start` corresponds to, so several processes share one clock."""

    broker_url: str | None = None
    """The task broker of a cluster (EMS_BROKER_URL, e.g. `redis://127.0.0.1:6379/0`): set, `ems serve`
    only stores and forwards events and `ems worker` processes plan and dispatch; unset, one
    process does everything (the demo)."""
    lease_s: float = Field(default=5.0, gt=0)
    """How long a worker's claim on a site lasts without renewal: a worker killed mid-plan hands
    its site to another after at most this long."""
    sweep_interval_s: float = Field(default=1.0, gt=0)
    """How often each worker renews its leases and looks for work a lost message left behind."""

    admin_token: str | None = None
    """Bearer token of the admin API (EMS_ADMIN_TOKEN); unset disables the admin API."""

    secret_key: str | None = None
    """Signs driver links and admin session cookies (EMS_SECRET_KEY); unset, one is generated once
    and kept in the database, so links and logins survive a restart."""
    driver_link_ttl_s: int = Field(default=48 * 3600, gt=0)
    """How long a driver link minted for a session stays valid."""
    admin_session_max_age_s: int = Field(default=8 * 3600, gt=0)
    """How long an admin stays logged in without logging in again."""

    @field_validator("secret_key")
    @classmethod
    def _strong_secret_key(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) < 32 or value.strip() != value or len(set(value)) < 8:
            raise ValueError("EMS_SECRET_KEY must be 32 or more varied characters, no surrounding spaces")
        return value

    @field_validator("admin_token")
    @classmethod
    def _strong_admin_token(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if len(value) < 16 or value.strip() != value:
            raise ValueError("EMS_ADMIN_TOKEN must be at least 16 characters, without surrounding spaces")
        return value

    @field_validator("public_url")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("EMS_PUBLIC_URL must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("country_code", "party_id")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("sqlite_synchronous")
    @classmethod
    def _known_sync_mode(cls, value: str) -> str:
        if value.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError("EMS_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
        return value.upper()

    def make_clock(self) -> Clock:
        if self.clock_start is None:
            return RealClock()
        return ScaledClock(self.clock_start, self.clock_speed, self.clock_real_start_unix_s)

    @property
    def ocpi_base_url(self) -> str:
        return f"{self.public_url}/ocpi"

    @property
    def versions_url(self) -> str:
        return f"{self.ocpi_base_url}/versions"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
