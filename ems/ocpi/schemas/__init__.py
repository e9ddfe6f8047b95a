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
  numbers are ``float`` (JSON number), integers ``int``.
* Enums are :class:`~enum.StrEnum` with the spec's exact values and reject unknown values,
  except ``ModuleID`` and ``VersionNumber``, where unknown values (custom modules, later
  versions in a partner's version list) are kept as plain strings.
* ``CiString`` is printable ASCII (0x20-0x7E); ``string`` is Unicode without control
  characters (tab, CR and LF tolerated in free text). Case-insensitive comparison of CiStrings
  is the caller's job (e.g. upper-case country_code/party_id when keying).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Generic, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

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

NonNegativeInt = Annotated[int, Field(ge=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
ImageDimension = Annotated[int, Field(ge=0, le=99999)]
"""int(5): at most five digits."""


def floor_one_decimal(value: float) -> float:
    """Round *down* to one decimal: the spec allows at most one, and a limit must not grow."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_FLOOR))


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
# Versions and credentials
# --------------------------------------------------------------------------------------------


class VersionNumber(StrEnum):
    """Known OCPI versions (2.1 and 2.2 are deprecated but still listed by peers)."""

    V2_0 = "2.0"
    V2_1 = "2.1"
    V2_1_1 = "2.1.1"
    V2_2 = "2.2"
    V2_2_1 = "2.2.1"


class ModuleID(StrEnum):
    """Module identifiers of OCPI 2.2.1. Partners may agree on custom ids (plain strings)."""

    CDRS = "cdrs"
    CHARGING_PROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUB_CLIENT_INFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


class InterfaceRole(StrEnum):
    """SENDER = the data owner's interface; RECEIVER = the data consumer's interface."""

    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


AnyVersionNumber = Annotated[VersionNumber | str, Field(union_mode="left_to_right")]
"""A known :class:`VersionNumber` member, or the raw string of a version we do not know."""
AnyModuleID = Annotated[ModuleID | str, Field(union_mode="left_to_right")]
"""A known :class:`ModuleID` member, or a custom module id as a plain string."""


class Version(OcpiModel):
    """One entry of the versions list (GET on the versions endpoint)."""

    version: AnyVersionNumber
    url: URL


class Endpoint(OcpiModel):
    """One module endpoint in the version details."""

    identifier: AnyModuleID
    role: InterfaceRole
    url: URL


class VersionDetails(OcpiModel):
    """GET on a version details endpoint: the modules a party serves for that version."""

    version: AnyVersionNumber
    endpoints: list[Endpoint] = Field(min_length=1)


class Role(StrEnum):
    """Party roles. The EMS declares itself as ``SCSP``."""

    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


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


class CredentialsRole(OcpiModel):
    """One (role, party) a platform acts as."""

    role: Role
    business_details: BusinessDetails
    party_id: CiString3
    country_code: CiString2


class Credentials(OcpiModel):
    """Credentials exchanged at registration; ``token`` is the plain (not Base64) token."""

    token: CredentialsToken
    url: URL
    roles: list[CredentialsRole] = Field(min_length=1)

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, roles: list[CredentialsRole]) -> list[CredentialsRole]:
        """(role, party_id, country_code) must be unique (case-insensitive ids)."""
        seen: set[tuple[str, str, str]] = set()
        for entry in roles:
            key = (entry.role.value, entry.party_id.upper(), entry.country_code.upper())
            if key in seen:
                raise ValueError(f"duplicate role {key[0]} for {key[2]}/{key[1]}")
            seen.add(key)
        return roles


# --------------------------------------------------------------------------------------------
# Shared types (types.asciidoc, CDRs)
# --------------------------------------------------------------------------------------------


class DisplayText(OcpiModel):
    """Text in one language (ISO 639-1)."""

    language: String2
    text: String512


class Price(OcpiModel):
    """A price; ``incl_vat`` is absent when VAT is not known/applicable."""

    excl_vat: float
    incl_vat: float | None = None


class TokenType(StrEnum):
    """How the token that started a session is carried."""

    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


class AuthMethod(StrEnum):
    """How a session was authorised."""

    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class CdrToken(OcpiModel):
    """The token a session was started with (eMSP's country/party)."""

    country_code: CiString2
    party_id: CiString3
    uid: CiString36
    type: TokenType
    contract_id: CiString36


class CdrDimensionType(StrEnum):
    """Quantity of a CdrDimension; units: A, kWh, kW, %, hours (see the enum docs)."""

    CURRENT = "CURRENT"
    """Average current in the period, A (negative = to grid). Session only."""
    ENERGY = "ENERGY"
    """Energy (dis)charged in the period, kWh."""
    ENERGY_EXPORT = "ENERGY_EXPORT"
    """Energy to the grid, kWh. Session only."""
    ENERGY_IMPORT = "ENERGY_IMPORT"
    """Energy into the EV, kWh. Session only."""
    MAX_CURRENT = "MAX_CURRENT"
    """Maximum current, A, summed over phases."""
    MIN_CURRENT = "MIN_CURRENT"
    """Minimum current, A, summed over phases."""
    MAX_POWER = "MAX_POWER"
    """Maximum power, kW."""
    MIN_POWER = "MIN_POWER"
    """Minimum power, kW."""
    PARKING_TIME = "PARKING_TIME"
    """Time not charging, hours."""
    POWER = "POWER"
    """Average power, kW. Session only."""
    RESERVATION_TIME = "RESERVATION_TIME"
    """Reserved time, hours."""
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    """State of charge, % (0-100). Session only."""
    TIME = "TIME"
    """Charging time, hours."""


class CdrDimension(OcpiModel):
    """One measured quantity of a charging period."""

    type: CdrDimensionType
    volume: float


class ChargingPeriod(OcpiModel):
    """A period of a session; it ends where the next starts (or at session end)."""

    start_date_time: OcpiDateTime
    dimensions: list[CdrDimension] = Field(min_length=1)
    tariff_id: CiString36 | None = None


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------


class SessionStatus(StrEnum):
    """Lifecycle of a session (PENDING first; COMPLETED or INVALID last)."""

    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class Session(OcpiModel):
    """A charging session as the CPO pushes it (PUT) or lists it (GET)."""

    country_code: CiString2
    party_id: CiString3
    id: CiString36
    start_date_time: OcpiDateTime
    end_date_time: OcpiDateTime | None = None
    kwh: float
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    meter_id: String255 | None = None
    currency: String3
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: OcpiDateTime


class SessionPatch(OcpiModel):
    """PATCH body for a Session: any subset of fields plus the mandatory ``last_updated``.

    ``charging_periods`` in a PATCH are *appended* to the stored ones (absent/empty: unchanged).
    """

    country_code: CiString2 | None = None
    party_id: CiString3 | None = None
    id: CiString36 | None = None
    start_date_time: OcpiDateTime | None = None
    end_date_time: OcpiDateTime | None = None
    kwh: float | None = None
    cdr_token: CdrToken | None = None
    auth_method: AuthMethod | None = None
    authorization_reference: CiString36 | None = None
    location_id: CiString36 | None = None
    evse_uid: CiString36 | None = None
    connector_id: CiString36 | None = None
    meter_id: String255 | None = None
    currency: String3 | None = None
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus | None = None
    last_updated: OcpiDateTime


class ProfileType(StrEnum):
    """The driver's preference for how to charge."""

    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


class ChargingPreferences(OcpiModel):
    """Driver preferences (eMSP → CPO; our ``charging_preferences`` extension accepts them too)."""

    profile_type: ProfileType
    departure_time: OcpiDateTime | None = None
    energy_need: NonNegativeFloat | None = None
    """kWh the driver wants."""
    discharge_allowed: bool | None = None
    """Absent means false."""


class ChargingPreferencesResponse(StrEnum):
    """Answer (``data``) to a ChargingPreferences PUT."""

    ACCEPTED = "ACCEPTED"
    DEPARTURE_REQUIRED = "DEPARTURE_REQUIRED"
    ENERGY_NEED_REQUIRED = "ENERGY_NEED_REQUIRED"
    NOT_POSSIBLE = "NOT_POSSIBLE"
    PROFILE_TYPE_NOT_SUPPORTED = "PROFILE_TYPE_NOT_SUPPORTED"


# --------------------------------------------------------------------------------------------
# Locations
# --------------------------------------------------------------------------------------------


class GeoLocation(OcpiModel):
    """WGS84 coordinates as decimal strings with 5 to 7 decimals."""

    latitude: Latitude
    longitude: Longitude


class AdditionalGeoLocation(OcpiModel):
    """A related point (entrance, exit) with an optional name."""

    latitude: Latitude
    longitude: Longitude
    name: DisplayText | None = None


class PublishTokenType(OcpiModel):
    """A token that may see a non-published Location."""

    uid: CiString36 | None = None
    type: TokenType | None = None
    visual_number: String64 | None = None
    issuer: String64 | None = None
    group_id: CiString36 | None = None


class ParkingType(StrEnum):
    """Kind of parking at a Location."""

    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


class Facility(StrEnum):
    """Facilities near a Location."""

    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BIKE_SHARING = "BIKE_SHARING"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAM_STOP = "TRAM_STOP"
    METRO_STATION = "METRO_STATION"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    PARKING_LOT = "PARKING_LOT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class RegularHours(OcpiModel):
    """Weekly opening period; weekday 1 = Monday … 7 = Sunday, local time of the Location."""

    weekday: Annotated[int, Field(ge=1, le=7)]
    period_begin: HourMinute
    period_end: HourMinute


class ExceptionalPeriod(OcpiModel):
    """A one-off opening or closing period."""

    period_begin: OcpiDateTime
    period_end: OcpiDateTime


class Hours(OcpiModel):
    """Opening times; ``regular_hours`` is required when not open 24/7."""

    twentyfourseven: bool
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None


class EnergySourceCategory(StrEnum):
    """Primary energy source."""

    NUCLEAR = "NUCLEAR"
    GENERAL_FOSSIL = "GENERAL_FOSSIL"
    COAL = "COAL"
    GAS = "GAS"
    GENERAL_GREEN = "GENERAL_GREEN"
    SOLAR = "SOLAR"
    WIND = "WIND"
    WATER = "WATER"


class EnergySource(OcpiModel):
    """Share of one source in the energy mix, %."""

    source: EnergySourceCategory
    percentage: float


class EnvironmentalImpactCategory(StrEnum):
    """Kind of environmental impact."""

    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


class EnvironmentalImpact(OcpiModel):
    """Impact per kWh, g/kWh."""

    category: EnvironmentalImpactCategory
    amount: float


class EnergyMix(OcpiModel):
    """Energy mix supplied at a Location."""

    is_green_energy: bool
    energy_sources: list[EnergySource] | None = None
    environ_impact: list[EnvironmentalImpact] | None = None
    supplier_name: String64 | None = None
    energy_product_name: String64 | None = None


class Status(StrEnum):
    """EVSE status. EVSEs are never deleted: they get ``REMOVED``."""

    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


class StatusSchedule(OcpiModel):
    """A planned status change of an EVSE."""

    period_begin: OcpiDateTime
    period_end: OcpiDateTime | None = None
    status: Status


class Capability(StrEnum):
    """EVSE capabilities; ``CHARGING_PROFILE_CAPABLE`` gates sending profiles."""

    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class ParkingRestriction(StrEnum):
    """Who may park at an EVSE."""

    EV_ONLY = "EV_ONLY"
    PLUGGED = "PLUGGED"
    DISABLED = "DISABLED"
    CUSTOMERS = "CUSTOMERS"
    MOTORCYCLES = "MOTORCYCLES"


class ConnectorType(StrEnum):
    """Connector standards of OCPI 2.2.1 (values are case-sensitive, e.g. ``IEC_60309_2_single_16``)."""

    CHADEMO = "CHADEMO"
    CHAOJI = "CHAOJI"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    DOMESTIC_M = "DOMESTIC_M"
    DOMESTIC_N = "DOMESTIC_N"
    DOMESTIC_O = "DOMESTIC_O"
    GBT_AC = "GBT_AC"
    GBT_DC = "GBT_DC"
    IEC_60309_2_SINGLE_16 = "IEC_60309_2_single_16"
    IEC_60309_2_THREE_16 = "IEC_60309_2_three_16"
    IEC_60309_2_THREE_32 = "IEC_60309_2_three_32"
    IEC_60309_2_THREE_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    NEMA_5_20 = "NEMA_5_20"
    NEMA_6_30 = "NEMA_6_30"
    NEMA_6_50 = "NEMA_6_50"
    NEMA_10_30 = "NEMA_10_30"
    NEMA_10_50 = "NEMA_10_50"
    NEMA_14_30 = "NEMA_14_30"
    NEMA_14_50 = "NEMA_14_50"
    PANTOGRAPH_BOTTOM_UP = "PANTOGRAPH_BOTTOM_UP"
    PANTOGRAPH_TOP_DOWN = "PANTOGRAPH_TOP_DOWN"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class ConnectorFormat(StrEnum):
    """Socket on the charger, or a cable attached to it."""

    SOCKET = "SOCKET"
    CABLE = "CABLE"


class PowerType(StrEnum):
    """Electrical supply of a connector (the two 2-phase values are new in 2.2.1)."""

    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class Connector(OcpiModel):
    """A connector of an EVSE. ``max_voltage`` is line-to-neutral for AC_3_PHASE."""

    id: CiString36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: int
    """V."""
    max_amperage: int
    """A (per phase)."""
    max_electric_power: int | None = None
    """W; set when lower than voltage × current × phases would suggest."""
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: URL | None = None
    last_updated: OcpiDateTime


class ConnectorPatch(OcpiModel):
    """PATCH body for a Connector (``.../{location_id}/{evse_uid}/{connector_id}``)."""

    id: CiString36 | None = None
    standard: ConnectorType | None = None
    format: ConnectorFormat | None = None
    power_type: PowerType | None = None
    max_voltage: int | None = None
    max_amperage: int | None = None
    max_electric_power: int | None = None
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: URL | None = None
    last_updated: OcpiDateTime


class EVSE(OcpiModel):
    """An EVSE; ``uid`` is the technical key (= Session.evse_uid), ``evse_id`` the eMI3 id."""

    uid: CiString36
    evse_id: CiString48 | None = None
    status: Status
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: list[Connector] = Field(min_length=1)
    floor_level: String4 | None = None
    coordinates: GeoLocation | None = None
    physical_reference: String16 | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: OcpiDateTime


class EvsePatch(OcpiModel):
    """PATCH body for an EVSE (``.../{location_id}/{evse_uid}``)."""

    uid: CiString36 | None = None
    evse_id: CiString48 | None = None
    status: Status | None = None
    status_schedule: list[StatusSchedule] | None = None
    capabilities: list[Capability] | None = None
    connectors: list[Connector] | None = Field(default=None, min_length=1)
    floor_level: String4 | None = None
    coordinates: GeoLocation | None = None
    physical_reference: String16 | None = None
    directions: list[DisplayText] | None = None
    parking_restrictions: list[ParkingRestriction] | None = None
    images: list[Image] | None = None
    last_updated: OcpiDateTime


class Location(OcpiModel):
    """A charging location of a CPO with its EVSEs and connectors."""

    country_code: CiString2
    party_id: CiString3
    id: CiString36
    publish: bool
    publish_allowed_to: list[PublishTokenType] | None = None
    name: String255 | None = None
    address: String45
    city: String45
    postal_code: String10 | None = None
    state: String20 | None = None
    country: String3
    coordinates: GeoLocation
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingType | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: String255
    """IANA zone, e.g. ``Europe/Brussels``."""
    opening_times: Hours | None = None
    charging_when_closed: bool | None = None
    """Absent means true."""
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: OcpiDateTime


class LocationPatch(OcpiModel):
    """PATCH body for a Location (``.../{location_id}``)."""

    country_code: CiString2 | None = None
    party_id: CiString3 | None = None
    id: CiString36 | None = None
    publish: bool | None = None
    publish_allowed_to: list[PublishTokenType] | None = None
    name: String255 | None = None
    address: String45 | None = None
    city: String45 | None = None
    postal_code: String10 | None = None
    state: String20 | None = None
    country: String3 | None = None
    coordinates: GeoLocation | None = None
    related_locations: list[AdditionalGeoLocation] | None = None
    parking_type: ParkingType | None = None
    evses: list[EVSE] | None = None
    directions: list[DisplayText] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: String255 | None = None
    opening_times: Hours | None = None
    charging_when_closed: bool | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: OcpiDateTime


# --------------------------------------------------------------------------------------------
# Charging profiles
# --------------------------------------------------------------------------------------------


class ChargingRateUnit(StrEnum):
    """``A``: current per phase (we use it for AC); ``W``: total power (we use it for DC)."""

    W = "W"
    A = "A"


class ChargingProfilePeriod(OcpiModel):
    """A limit from ``start_period`` seconds after the profile start until the next period."""

    start_period: NonNegativeInt
    limit: NonNegativeFloat
    """In the profile's ChargingRateUnit; at most one decimal when sent (see SetChargingProfile)."""


class ChargingProfile(OcpiModel):
    """Upper limits over time for one session (not set-points)."""

    start_date_time: OcpiDateTime | None = None
    """Absolute start; absent means relative to the start of charging."""
    duration: NonNegativeInt | None = None
    """Seconds; absent means the last period runs on."""
    charging_rate_unit: ChargingRateUnit
    min_charging_rate: NonNegativeFloat | None = None
    charging_profile_period: list[ChargingProfilePeriod] | None = None


class SetChargingProfile(OcpiModel):
    """Body of our PUT to the CPO's chargingprofiles Receiver.

    Validation enforces what partners' conformance checks look at: periods start at
    ``start_period`` 0 and increase strictly, and ``limit``/``min_charging_rate`` carry at
    most one decimal (values are rounded *down* so a limit never exceeds what was planned).
    """

    charging_profile: ChargingProfile
    response_url: URL

    @model_validator(mode="after")
    def _sendable(self) -> Self:
        profile = self.charging_profile
        periods = profile.charging_profile_period or []
        if periods:
            if periods[0].start_period != 0:
                raise ValueError("charging_profile.charging_profile_period[0].start_period must be 0")
            starts = [p.start_period for p in periods]
            if any(b <= a for a, b in pairwise(starts)):
                raise ValueError("charging_profile.charging_profile_period start_period must increase")
        # Copies, so a ChargingProfile passed in by the caller is not changed behind its back.
        update: dict[str, object] = {}
        if profile.charging_profile_period is not None:
            update["charging_profile_period"] = [
                p.model_copy(update={"limit": floor_one_decimal(p.limit)}) for p in periods
            ]
        if profile.min_charging_rate is not None:
            update["min_charging_rate"] = floor_one_decimal(profile.min_charging_rate)
        if update:
            self.charging_profile = profile.model_copy(update=update)
        return self


class ChargingProfileResponseType(StrEnum):
    """Immediate answer of the CPO to a GET/PUT/DELETE on its chargingprofiles Receiver."""

    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TOO_OFTEN = "TOO_OFTEN"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class ChargingProfileResponse(OcpiModel):
    """``data`` of the CPO's immediate answer; the async result follows only if ACCEPTED."""

    result: ChargingProfileResponseType
    timeout: NonNegativeInt
    """Seconds to wait for the async result before assuming it will never come."""


class ChargingProfileResultType(StrEnum):
    """Result the station reports (via the CPO) to our ``response_url``."""

    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


class ActiveChargingProfile(OcpiModel):
    """The profile the station actually applies, relative to ``start_date_time``."""

    start_date_time: OcpiDateTime
    charging_profile: ChargingProfile


class ActiveChargingProfileResult(OcpiModel):
    """POSTed to our response_url after our GET; ``profile`` present when ACCEPTED."""

    result: ChargingProfileResultType
    profile: ActiveChargingProfile | None = None


class ChargingProfileResult(OcpiModel):
    """POSTed to our response_url after our PUT (SetChargingProfile)."""

    result: ChargingProfileResultType


class ClearProfileResult(OcpiModel):
    """POSTed to our response_url after our DELETE."""

    result: ChargingProfileResultType


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
    status_code: int
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
