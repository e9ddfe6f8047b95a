"""The Sessions module: Session and its PATCH body, the CDR types a Session carries (token,
charging periods) and the charging preferences a driver sends for a session.

Apart because the CPO pushes sessions on their own endpoint (Receiver interface).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ems.core.json_types import Boolean, Number
from ems.ocpi.datetimes import OcpiDateTime
from ems.ocpi.schemas.common import (
    CiString2,
    CiString3,
    CiString36,
    NonNegativeFloat,
    OcpiModel,
    Price,
    String3,
    String255,
    TokenType,
)

# --------------------------------------------------------------------------------------------
# CDR types a Session uses (cdrs.asciidoc)
# --------------------------------------------------------------------------------------------


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
    volume: Number


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
    kwh: Number
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
    kwh: Number | None = None
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
    discharge_allowed: Boolean | None = None
    """Absent means false."""


class ChargingPreferencesResponse(StrEnum):
    """Answer (``data``) to a ChargingPreferences PUT."""

    ACCEPTED = "ACCEPTED"
    DEPARTURE_REQUIRED = "DEPARTURE_REQUIRED"
    ENERGY_NEED_REQUIRED = "ENERGY_NEED_REQUIRED"
    NOT_POSSIBLE = "NOT_POSSIBLE"
    PROFILE_TYPE_NOT_SUPPORTED = "PROFILE_TYPE_NOT_SUPPORTED"
