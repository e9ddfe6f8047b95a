"""The ChargingProfiles module: the profile we send (:class:`SetChargingProfile`), the CPO's
immediate answer, the async results POSTed to our ``response_url`` and the
ActiveChargingProfile the CPO pushes.

Apart because here the EMS is the Sender: :class:`SetChargingProfile` checks and rounds what
we send, with ``floor_one_decimal`` (here, next to its one user).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Self

from pydantic import model_validator

from ems.ocpi.datetimes import OcpiDateTime
from ems.ocpi.schemas.common import URL, NonNegativeFloat, NonNegativeInt, OcpiModel


def floor_one_decimal(value: float) -> float:
    """Round *down* to one decimal: the spec allows at most one, and a limit must not grow."""
    return float(Decimal(repr(value)).quantize(Decimal("0.1"), rounding=ROUND_FLOOR))


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
