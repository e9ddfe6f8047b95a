"""OCPI DateTime: parse leniently, emit strictly.

OCPI 2.2.1 (types, DateTime) says: RFC 3339, at most 25 characters, always UTC; the trailing
``Z`` is optional on input (its absence means UTC) and fractional seconds are allowed.
Peers also send ``+00:00`` (https://github.com/ocpi/ocpi/issues/464) and zone-less values
(https://github.com/IZIVIA/ocpi-toolkit/issues/118), so we accept any offset and convert it
to UTC, and always emit ``YYYY-MM-DDTHH:MM:SS[.fff]Z``. Python's ``isoformat()`` writes
``+00:00``: never send it raw, use :func:`format_ocpi_datetime` (or :data:`OcpiDateTime` in a
model).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema
from pydantic_core import PydanticCustomError

__all__ = [
    "MAX_OCPI_DATETIME_LENGTH",
    "OcpiDateTime",
    "ensure_utc",
    "format_ocpi_datetime",
    "parse_ocpi_datetime",
]

MAX_OCPI_DATETIME_LENGTH = 25
"""string(25) in the spec; what we emit is at most 24 characters."""

_DATETIME_RE = re.compile(
    r"""
    (?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})
    [Tt ]
    (?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})
    (?:[.,](?P<fraction>\d{1,9}))?
    (?P<zone>[Zz]|[+-]\d{2}:?\d{2})?
    """,
    re.VERBOSE,
)


def parse_ocpi_datetime(value: str) -> datetime:
    """Parse an OCPI DateTime into an aware UTC ``datetime``.

    Accepts ``2015-06-29T20:39:09Z``, ``2015-06-29T20:39:09`` (no zone = UTC),
    ``2015-06-29T20:39:09+00:00`` and any other offset (converted to UTC), with or without
    fractional seconds (more than 6 digits are truncated to microseconds).
    Raises ``ValueError`` naming the bad value for anything else.
    """
    if not isinstance(value, str):
        raise ValueError(f"OCPI DateTime must be a string, got {type(value).__name__}")
    text = value.strip()
    match = _DATETIME_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"invalid OCPI DateTime {value!r}: expected RFC 3339 like 2015-06-29T20:39:09Z")
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    zone = match["zone"]
    tz: timezone = UTC
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        if offset >= timedelta(hours=24):
            raise ValueError(f"invalid OCPI DateTime {value!r}: offset out of range")
        tz = timezone(sign * offset)
    try:
        parsed = datetime(
            int(match["year"]),
            int(match["month"]),
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            int(fraction),
            tzinfo=tz,
        )
        return parsed.astimezone(UTC)
    except ValueError as exc:
        raise ValueError(f"invalid OCPI DateTime {value!r}: {exc}") from None
    except OverflowError:  # an offset that takes year 1 or 9999 out of the calendar
        raise ValueError(f"invalid OCPI DateTime {value!r}: out of range in UTC") from None


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC; a naive ``datetime`` is taken to be UTC already."""
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_in_zone(value: datetime, zone: str, fmt: str = "%Y-%m-%d %H:%M", *, named: bool = False) -> str:
    """`value` in the time zone `zone` (a site's), labelled with it (`CEST`, or with `named`
    `Europe/Paris (CEST)`): what people read, where OCPI and the database keep UTC (naive = UTC)."""
    label = f"{zone} (%Z)" if named else "%Z"
    return ensure_utc(value).astimezone(ZoneInfo(zone)).strftime(f"{fmt} {label}")


def format_ocpi_datetime(value: datetime) -> str:
    """Format as ``YYYY-MM-DDTHH:MM:SSZ`` in UTC (naive = UTC).

    Whole seconds unless there is a sub-second part, then milliseconds
    (``.123Z``; truncated, not rounded, so a time never moves forward). At most 24 characters.
    """
    utc = ensure_utc(value)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    millis = utc.microsecond // 1000
    if millis:
        text += f".{millis:03d}"
    return text + "Z"


def _validate(value: Any) -> datetime:
    """Pydantic hook: strings are parsed, ``datetime`` objects normalised to UTC."""
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, str):
        try:
            return parse_ocpi_datetime(value)
        except ValueError as exc:
            raise PydanticCustomError("ocpi_datetime", "{reason}", {"reason": str(exc)}) from None
    raise PydanticCustomError(
        "ocpi_datetime",
        "OCPI DateTime must be an RFC 3339 string, got {type_name}",
        {"type_name": type(value).__name__},
    )


OcpiDateTime = Annotated[
    datetime,
    BeforeValidator(_validate),
    PlainSerializer(format_ocpi_datetime, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "maxLength": MAX_OCPI_DATETIME_LENGTH}),
]
"""A ``datetime`` field that accepts any OCPI-ish DateTime and serialises with ``Z``.

In Python (``model_dump()``) it stays an aware UTC ``datetime``; in JSON
(``model_dump(mode="json")`` / ``model_dump_json()`` / FastAPI responses) it is the ``Z`` string.
"""
