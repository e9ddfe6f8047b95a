"""The OCPI response envelope, on every OCPI response, errors included."""

from __future__ import annotations

from typing import Any, Final

from fastapi.responses import JSONResponse

from ems.ocpi.schemas import OcpiResponse
from ems.ocpi.status import OcpiStatus

OMIT: Final = object()
"""`data` left out of the envelope (callback answers, push acknowledgements)."""
_ANY_ENVELOPE = OcpiResponse[Any]


def envelope(
    data: Any = OMIT,
    status_code: int = OcpiStatus.SUCCESS,
    status_message: str | None = None,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one envelope model of `ems.ocpi.schemas`, so what we send and what we parse agree."""
    reply = _ANY_ENVELOPE(
        data=None if data is OMIT else data,
        status_code=int(status_code),
        status_message=status_message or None,
    )
    return JSONResponse(reply.model_dump(mode="json"), status_code=http_status, headers=headers)
