"""Domain events and the in-process bus that carries them.

Storing a change publishes an event *after* its transaction commits, so a subscriber (the
planner) always reads what the event announces. Handlers run synchronously in the publisher's
thread and must be quick: the planner only marks the site dirty and returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

logger = logging.getLogger(__name__)


class SessionChange(StrEnum):
    STARTED = "started"
    UPDATED = "updated"
    STOPPED = "stopped"


@dataclass(frozen=True)
class SessionKey:
    """A session is unique per (partner, country_code, party_id, id): ids are unique per CPO only."""

    partner_id: int
    country_code: str
    party_id: str
    session_id: str


@dataclass(frozen=True)
class SessionEvent:
    key: SessionKey
    change: SessionChange
    location_id: str
    evse_uid: str
    connector_id: str
    status: str
    at: datetime


@dataclass(frozen=True)
class PreferencesChanged:
    key: SessionKey
    source: str
    at: datetime


@dataclass(frozen=True)
class LocationChanged:
    partner_id: int
    country_code: str
    party_id: str
    location_id: str
    evse_uid: str | None
    connector_id: str | None
    at: datetime


@dataclass(frozen=True)
class ChargingProfileOutcome:
    """A CPO told us what became of a profile (synchronous answer or asynchronous result)."""

    request_id: str
    partner_id: int
    session_id: str
    kind: str
    result: str
    at: datetime
    asynchronous: bool = False
    """True for the result POSTed to our `response_url`, False for the immediate answer."""


@dataclass(frozen=True)
class ForecastChanged:
    """New forecast or measured series for a site: its plans may change."""

    site_id: str
    at: datetime


@dataclass(frozen=True)
class SiteChanged:
    """A site's wiring changed: `version` is the new current version (the last one when `deleted`)."""

    site_id: str
    version: int
    at: datetime
    deleted: bool = False


DomainEvent = (
    SessionEvent
    | PreferencesChanged
    | LocationChanged
    | ChargingProfileOutcome
    | SiteChanged
    | ForecastChanged
)
Handler = Callable[[DomainEvent], None]


class EventBus:
    """A small synchronous publish/subscribe bus; a failing handler never breaks the publisher."""

    def __init__(self) -> None:
        self._handlers: list[Handler] = []
        self._lock = threading.Lock()

    def subscribe(self, handler: Handler) -> Callable[[], None]:
        """Register `handler`; returns the function that unsubscribes it."""
        with self._lock:
            self._handlers.append(handler)

        def unsubscribe() -> None:
            with self._lock:
                if handler in self._handlers:
                    self._handlers.remove(handler)

        return unsubscribe

    def publish(self, event: DomainEvent) -> None:
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            try:
                handler(event)
            except Exception:
                logger.exception("event handler %r failed on %r", handler, event)
