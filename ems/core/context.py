"""The running EMS: settings, database, event bus and outgoing HTTP, built once and passed down."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ems.core.clock import Clock, RealClock
from ems.core.config import Settings
from ems.core.events import EventBus
from ems.core.metrics import Metrics
from ems.store.db import make_engine, make_session_factory
from ems.store.migrate import upgrade
from ems.store.server_settings import PUBLIC_URL, read_server_setting


@dataclass
class EmsContext:
    settings: Settings
    engine: Engine
    db: sessionmaker[Session]
    clock: Clock = field(default_factory=RealClock)
    bus: EventBus = field(default_factory=EventBus)
    transport: httpx.BaseTransport | None = None
    """Outgoing HTTP transport; None means the network (tests may plug a loopback app in)."""
    metrics: Metrics = field(default_factory=Metrics)

    def __post_init__(self) -> None:
        self.bus.subscribe(self.metrics.on_event)

    @classmethod
    def create(cls, settings: Settings, *, migrate: bool = True) -> EmsContext:
        engine = make_engine(settings.database_url, settings.sqlite_synchronous, settings.database_timeout_s)
        db = make_session_factory(engine)
        if migrate:
            upgrade(engine)
            settings = _with_served_public_url(settings, db)
        return cls(settings=settings, engine=engine, db=db, clock=settings.make_clock())

    _shared_http: httpx.Client | None = field(default=None, init=False, repr=False)

    def http_client(self) -> httpx.Client:
        """A client of its own, for occasional calls (registration, pulls); close it after use."""
        return httpx.Client(timeout=self.settings.http_timeout_s, transport=self.transport)

    @property
    def http(self) -> httpx.Client:
        """One pooled, thread-safe client for the hot path (profiles): connections are reused."""
        if self._shared_http is None:
            self._shared_http = httpx.Client(
                timeout=self.settings.http_timeout_s,
                transport=self.transport,
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            )
        return self._shared_http

    def close(self) -> None:
        if self._shared_http is not None:
            self._shared_http.close()
        self.engine.dispose()


def _with_served_public_url(settings: Settings, db: sessionmaker[Session]) -> Settings:
    """Without `EMS_PUBLIC_URL`, the URL the last `ems serve` on this database advertises: a
    command run beside the server (`ems partner invite`, driver links) names the server's address."""
    if "public_url" in settings.model_fields_set:
        return settings
    with db() as session:
        served = read_server_setting(session, PUBLIC_URL)
    return settings if served is None else settings.model_copy(update={"public_url": served})
