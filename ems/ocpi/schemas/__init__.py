"""Pydantic v2 models of the OCPI 2.2.1 objects an SCSP sends or receives.

Field names, cardinalities, lengths and enum values follow OCPI 2.2.1 (+ errata d2).

Policies (why they are what they are):

* **Unknown fields are kept** (``extra="allow"`` on every object): a receiver must tolerate
  fields it does not know (newer minor versions, vendor additions, spec-example typos like
  ``floor``); they land in ``model.model_extra`` and are emitted again on dump, so a stored
  object can be forwarded unchanged. Known fields are still fully validated, so a PUT of a
  Session or Location missing a required field is rejected.
* **PATCH bodies** have their own models (:class:`SessionPatch`, :class:`LocationPatch`,
  :class:`EvsePatch`, :class:`ConnectorPatch`): every field optional with the same type and
  limits as in the full object, except ``last_updated`` which is required (spec: a PATCH
  without it is answered with 2001). Unknown fields are kept as in the full objects; take the
  changes with ``patch.model_dump(exclude_unset=True)`` (unknown fields included).
* **Absent optional values are omitted, never ``null``**: every model drops ``None`` values
  when dumped. That is how the envelope :class:`OcpiResponse` leaves ``data`` out when it has
  none (d2: answers to Session PUT/PATCH, result callbacks and ActiveChargingProfile pushes
  omit ``data``): just build ``OcpiResponse[...]`` without ``data`` and dump or return it.
* Optional lists (cardinality ``*``) default to ``None`` rather than ``[]`` so that "absent"
  stays distinguishable from "empty" (a Session PATCH without ``charging_periods`` leaves them
  untouched) and documents round-trip unchanged. Lists with cardinality ``+`` need one item.
* DateTimes are :data:`~ems.ocpi.datetimes.OcpiDateTime` (lenient in, ``...Z`` out);
  numbers, integers and booleans are :mod:`ems.core.json_types`: their JSON type only (``"904"``
  for a number is a 2001 naming the field, never 904.0); an integral number is an integer.
* Enums are :class:`~enum.StrEnum` with the spec's exact values and reject unknown values,
  except ``ModuleID`` and ``VersionNumber``, where unknown values (custom modules, later
  versions in a partner's version list) are kept as plain strings.
* ``CiString`` is printable ASCII (0x20-0x7E); ``string`` is Unicode without control
  characters (tab, CR and LF tolerated in free text). Case-insensitive comparison of CiStrings
  is the caller's job (e.g. upper-case country_code/party_id when keying).

One module per OCPI module, all importable from here (``from ems.ocpi.schemas import X``):
:mod:`~ems.ocpi.schemas.common` (primitive types, the :class:`OcpiModel` base, shared objects,
the :class:`OcpiResponse` envelope), :mod:`~ems.ocpi.schemas.credentials` (versions and
credentials), :mod:`~ems.ocpi.schemas.sessions` (sessions, their CDR types, charging
preferences), :mod:`~ems.ocpi.schemas.locations` (locations, EVSEs, connectors) and
:mod:`~ems.ocpi.schemas.chargingprofiles`. Every module imports only from ``common``.
"""

from __future__ import annotations

from ems.ocpi.schemas.chargingprofiles import (
    ActiveChargingProfile,
    ActiveChargingProfileResult,
    ChargingProfile,
    ChargingProfilePeriod,
    ChargingProfileResponse,
    ChargingProfileResponseType,
    ChargingProfileResult,
    ChargingProfileResultType,
    ChargingRateUnit,
    ClearProfileResult,
    SetChargingProfile,
    floor_one_decimal,
)
from ems.ocpi.schemas.common import (
    URL,
    BusinessDetails,
    CiString2,
    CiString3,
    CiString4,
    CiString36,
    CiString48,
    CredentialsToken,
    DataT,
    DisplayText,
    HourMinute,
    Image,
    ImageCategory,
    ImageDimension,
    Latitude,
    Longitude,
    NonNegativeFloat,
    NonNegativeInt,
    OcpiModel,
    OcpiResponse,
    Price,
    String2,
    String3,
    String4,
    String10,
    String16,
    String20,
    String45,
    String64,
    String100,
    String255,
    String512,
    TokenType,
)
from ems.ocpi.schemas.credentials import (
    AnyModuleID,
    AnyVersionNumber,
    Credentials,
    CredentialsRole,
    Endpoint,
    InterfaceRole,
    ModuleID,
    Role,
    Version,
    VersionDetails,
    VersionNumber,
)
from ems.ocpi.schemas.locations import (
    EVSE,
    AdditionalGeoLocation,
    Capability,
    Connector,
    ConnectorFormat,
    ConnectorPatch,
    ConnectorType,
    EnergyMix,
    EnergySource,
    EnergySourceCategory,
    EnvironmentalImpact,
    EnvironmentalImpactCategory,
    EvsePatch,
    ExceptionalPeriod,
    Facility,
    GeoLocation,
    Hours,
    Location,
    LocationPatch,
    ParkingRestriction,
    ParkingType,
    PowerType,
    PublishTokenType,
    RegularHours,
    Status,
    StatusSchedule,
)
from ems.ocpi.schemas.sessions import (
    AuthMethod,
    CdrDimension,
    CdrDimensionType,
    CdrToken,
    ChargingPeriod,
    ChargingPreferences,
    ChargingPreferencesResponse,
    ProfileType,
    Session,
    SessionPatch,
    SessionStatus,
)

__all__ = [
    "EVSE",
    "URL",
    "ActiveChargingProfile",
    "ActiveChargingProfileResult",
    "AdditionalGeoLocation",
    "AnyModuleID",
    "AnyVersionNumber",
    "AuthMethod",
    "BusinessDetails",
    "Capability",
    "CdrDimension",
    "CdrDimensionType",
    "CdrToken",
    "ChargingPeriod",
    "ChargingPreferences",
    "ChargingPreferencesResponse",
    "ChargingProfile",
    "ChargingProfilePeriod",
    "ChargingProfileResponse",
    "ChargingProfileResponseType",
    "ChargingProfileResult",
    "ChargingProfileResultType",
    "ChargingRateUnit",
    "CiString2",
    "CiString3",
    "CiString4",
    "CiString36",
    "CiString48",
    "ClearProfileResult",
    "Connector",
    "ConnectorFormat",
    "ConnectorPatch",
    "ConnectorType",
    "Credentials",
    "CredentialsRole",
    "CredentialsToken",
    "DataT",
    "DisplayText",
    "Endpoint",
    "EnergyMix",
    "EnergySource",
    "EnergySourceCategory",
    "EnvironmentalImpact",
    "EnvironmentalImpactCategory",
    "EvsePatch",
    "ExceptionalPeriod",
    "Facility",
    "GeoLocation",
    "HourMinute",
    "Hours",
    "Image",
    "ImageCategory",
    "ImageDimension",
    "InterfaceRole",
    "Latitude",
    "Location",
    "LocationPatch",
    "Longitude",
    "ModuleID",
    "NonNegativeFloat",
    "NonNegativeInt",
    "OcpiModel",
    "OcpiResponse",
    "ParkingRestriction",
    "ParkingType",
    "PowerType",
    "Price",
    "ProfileType",
    "PublishTokenType",
    "RegularHours",
    "Role",
    "Session",
    "SessionPatch",
    "SessionStatus",
    "SetChargingProfile",
    "Status",
    "StatusSchedule",
    "String2",
    "String3",
    "String4",
    "String10",
    "String16",
    "String20",
    "String45",
    "String64",
    "String100",
    "String255",
    "String512",
    "TokenType",
    "Version",
    "VersionDetails",
    "VersionNumber",
    "floor_one_decimal",
]
