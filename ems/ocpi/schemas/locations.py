"""The Locations module: Location, EVSE and Connector, their PATCH bodies and the types only
they use (coordinates, opening hours, energy mix, statuses, capabilities, connector standards).

Apart because it is the largest module and the CPO pushes it on its own endpoint.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from ems.core.json_types import Boolean, Integer, Number
from ems.ocpi.datetimes import OcpiDateTime
from ems.ocpi.schemas.common import (
    URL,
    BusinessDetails,
    CiString2,
    CiString3,
    CiString36,
    CiString48,
    DisplayText,
    HourMinute,
    Image,
    Latitude,
    Longitude,
    OcpiModel,
    String3,
    String4,
    String10,
    String16,
    String20,
    String45,
    String64,
    String255,
    TokenType,
)


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

    weekday: Annotated[Integer, Field(ge=1, le=7)]
    period_begin: HourMinute
    period_end: HourMinute


class ExceptionalPeriod(OcpiModel):
    """A one-off opening or closing period."""

    period_begin: OcpiDateTime
    period_end: OcpiDateTime


class Hours(OcpiModel):
    """Opening times; ``regular_hours`` is required when not open 24/7."""

    twentyfourseven: Boolean
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
    percentage: Number


class EnvironmentalImpactCategory(StrEnum):
    """Kind of environmental impact."""

    NUCLEAR_WASTE = "NUCLEAR_WASTE"
    CARBON_DIOXIDE = "CARBON_DIOXIDE"


class EnvironmentalImpact(OcpiModel):
    """Impact per kWh, g/kWh."""

    category: EnvironmentalImpactCategory
    amount: Number


class EnergyMix(OcpiModel):
    """Energy mix supplied at a Location."""

    is_green_energy: Boolean
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
    max_voltage: Integer
    """V."""
    max_amperage: Integer
    """A (per phase)."""
    max_electric_power: Integer | None = None
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
    max_voltage: Integer | None = None
    max_amperage: Integer | None = None
    max_electric_power: Integer | None = None
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
    publish: Boolean
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
    charging_when_closed: Boolean | None = None
    """Absent means true."""
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: OcpiDateTime


class LocationPatch(OcpiModel):
    """PATCH body for a Location (``.../{location_id}``)."""

    country_code: CiString2 | None = None
    party_id: CiString3 | None = None
    id: CiString36 | None = None
    publish: Boolean | None = None
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
    charging_when_closed: Boolean | None = None
    images: list[Image] | None = None
    energy_mix: EnergyMix | None = None
    last_updated: OcpiDateTime
