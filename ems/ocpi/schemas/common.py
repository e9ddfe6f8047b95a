"""What every OCPI module's objects are built from: the primitive types, the :class:`OcpiModel`
base, the objects several modules share and the :class:`OcpiResponse` envelope.

Apart from the per-module files (``credentials``, ``sessions``, ``locations``,
``chargingprofiles``) so that each of them imports only from here, never from one another.
``Image`` and ``BusinessDetails`` (Locations module in the spec) are here because credentials
use them too, ``TokenType`` (Tokens module) because sessions and locations both do.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Generic, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    model_serializer,
)

from ems.core.json_types import Integer, Number
from ems.ocpi.datetimes import OcpiDateTime
from ems.ocpi.status import OcpiStatus

# --------------------------------------------------------------------------------------------
# Primitive types
# --------------------------------------------------------------------------------------------

_CI = r"^[\x20-\x7E]*$"
"""CiString: printable ASCII."""
_TEXT = r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F]*$"
"""string: no control characters except tab/LF/CR (free text sometimes carries line breaks)."""
_TOKEN = r"^[\x21-\x7E]+$"
"""Credentials token: printable ASCII without space (it goes into an HTTP header)."""

CiString2 = Annotated[str, StringConstraints(max_length=2, pattern=_CI)]
CiString3 = Annotated[str, StringConstraints(max_length=3, pattern=_CI)]
CiString4 = Annotated[str, StringConstraints(max_length=4, pattern=_CI)]
CiString36 = Annotated[str, StringConstraints(max_length=36, pattern=_CI)]
CiString48 = Annotated[str, StringConstraints(max_length=48, pattern=_CI)]

String2 = Annotated[str, StringConstraints(max_length=2, pattern=_TEXT)]
String3 = Annotated[str, StringConstraints(max_length=3, pattern=_TEXT)]
String4 = Annotated[str, StringConstraints(max_length=4, pattern=_TEXT)]
String10 = Annotated[str, StringConstraints(max_length=10, pattern=_TEXT)]
String16 = Annotated[str, StringConstraints(max_length=16, pattern=_TEXT)]
String20 = Annotated[str, StringConstraints(max_length=20, pattern=_TEXT)]
String45 = Annotated[str, StringConstraints(max_length=45, pattern=_TEXT)]
String64 = Annotated[str, StringConstraints(max_length=64, pattern=_TEXT)]
String100 = Annotated[str, StringConstraints(max_length=100, pattern=_TEXT)]
String255 = Annotated[str, StringConstraints(max_length=255, pattern=_TEXT)]
String512 = Annotated[str, StringConstraints(max_length=512, pattern=_TEXT)]

URL = Annotated[str, StringConstraints(max_length=255, pattern=_TEXT)]
"""URL = string(255). Kept verbatim (no normalisation: a trailing slash matters to peers)."""

CredentialsToken = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_TOKEN)]

Latitude = Annotated[str, StringConstraints(max_length=10, pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")]
Longitude = Annotated[str, StringConstraints(max_length=11, pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")]
HourMinute = Annotated[str, StringConstraints(max_length=5, pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]

NonNegativeInt = Annotated[Integer, Field(ge=0)]
NonNegativeFloat = Annotated[Number, Field(ge=0)]
ImageDimension = Annotated[Integer, Field(ge=0, le=99999)]
"""int(5): at most five digits."""


# --------------------------------------------------------------------------------------------
# Base model
# --------------------------------------------------------------------------------------------


class OcpiModel(BaseModel):
    """Common configuration: keep unknown fields, omit ``None`` when dumping."""

    model_config = ConfigDict(extra="allow")

    @model_serializer(mode="wrap")
    def _omit_none(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # No return annotation on purpose: pydantic then documents the model's own JSON schema
        # for responses instead of a bare "object".
        dumped = handler(self)
        if isinstance(dumped, dict):
            return {key: value for key, value in dumped.items() if value is not None}
        return dumped


# --------------------------------------------------------------------------------------------
# Shared types (types.asciidoc, and objects more than one module uses)
# --------------------------------------------------------------------------------------------


class DisplayText(OcpiModel):
    """Text in one language (ISO 639-1)."""

    language: String2
    text: String512


class Price(OcpiModel):
    """A price; ``incl_vat`` is absent when VAT is not known/applicable."""

    excl_vat: Number
    incl_vat: Number | None = None


class TokenType(StrEnum):
    """How the token that started a session is carried."""

    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


class ImageCategory(StrEnum):
    """What an image shows."""

    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


class Image(OcpiModel):
    """Reference to an image (logo, photo)."""

    url: URL
    thumbnail: URL | None = None
    category: ImageCategory
    type: CiString4
    width: ImageDimension | None = None
    height: ImageDimension | None = None


class BusinessDetails(OcpiModel):
    """Name, website and logo of a party or operator."""

    name: String100
    website: URL | None = None
    logo: Image | None = None


# --------------------------------------------------------------------------------------------
# Response envelope
# --------------------------------------------------------------------------------------------

DataT = TypeVar("DataT")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OcpiResponse(OcpiModel, Generic[DataT]):
    """The envelope of every OCPI response, errors included.

    ``data`` is omitted from the JSON (not ``null``) when it is ``None``, like every other
    absent optional value: ``OcpiResponse[None].success()`` dumps as
    ``{"status_code": 1000, "timestamp": "...Z"}``. Works the same through
    ``model_dump(mode="json")``, ``model_dump_json()`` and a FastAPI ``response_model``.
    """

    model_config = ConfigDict(extra="ignore")

    data: DataT | None = None
    status_code: Integer
    status_message: str | None = None
    timestamp: OcpiDateTime = Field(default_factory=_utc_now)

    @classmethod
    def success(cls, data: DataT | None = None, message: str | None = None) -> Self:
        """A 1000 answer, with ``data`` if given."""
        return cls(data=data, status_code=int(OcpiStatus.SUCCESS), status_message=message)

    @classmethod
    def error(cls, status: OcpiStatus | int, message: str) -> Self:
        """An error answer (2xxx/3xxx/4xxx) without ``data``."""
        return cls(status_code=int(status), status_message=message)
