"""Domain events and the in-process bus that carries them.

Storing a change publishes an event *after* its transaction commits, so a subscriber (the
planner) always reads what the event announces. Handlers run synchronously in the publisher's
thread and must be quick: the planner only marks the site dirty and returns.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

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


@dataclass(frozen=True)
class GroupChanged:
    """A group (territory) changed: its file, its members or one of its limits; `group_id` is the
    top-level group, the planning unit of every site under it."""

    group_id: str
    at: datetime
    deleted: bool = False


DomainEvent = (
    SessionEvent
    | PreferencesChanged
    | LocationChanged
    | ChargingProfileOutcome
    | SiteChanged
    | ForecastChanged
    | GroupChanged
)
Handler = Callable[[DomainEvent], None]

_EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (
        SessionEvent,
        PreferencesChanged,
        LocationChanged,
        ChargingProfileOutcome,
        SiteChanged,
        ForecastChanged,
        GroupChanged,
    )
}


def event_to_json(event: DomainEvent) -> tuple[str, dict[str, Any]]:
    """(kind, payload) of an event, for another process (the cluster's event log)."""
    payload: dict[str, Any] = {}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, SessionKey):
            value = dataclasses.asdict(value)
        elif isinstance(value, datetime):
            value = value.isoformat()
        payload[f.name] = value
    return type(event).__name__, payload


def event_from_json(kind: str, payload: dict[str, Any]) -> DomainEvent:
    """The event `event_to_json` wrote; a kind or field it does not know raises ValueError."""
    cls = _EVENT_TYPES.get(kind)
    if cls is None:
        raise ValueError(f"unknown event kind {kind!r}")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in payload:
            continue
        value = payload[f.name]
        if f.name == "key":
            value = SessionKey(**value)
        elif f.name == "change":
            value = SessionChange(value)
        elif f.name == "at":
            value = datetime.fromisoformat(value)
        values[f.name] = value
    try:
        event: DomainEvent = cls(**values)
    except TypeError as exc:
        raise ValueError(f"{kind}: {exc}") from None
    return event


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
