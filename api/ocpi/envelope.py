"""The OCPI response envelope, on every OCPI response, errors included."""

from __future__ import annotations

from typing import Any, Final

from fastapi.responses import JSONResponse

from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.status import OcpiStatus
from ems.store.models import utcnow

OMIT: Final = object()
"""`data` left out of the envelope (callback answers, push acknowledgements)."""


def envelope(
    data: Any = OMIT,
    status_code: int = OcpiStatus.SUCCESS,
    status_message: str | None = None,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {}
    if data is not OMIT:
        body["data"] = data
    body["status_code"] = int(status_code)
    if status_message:
        body["status_message"] = status_message
    body["timestamp"] = format_ocpi_datetime(utcnow())
    return JSONResponse(body, status_code=http_status, headers=headers)
