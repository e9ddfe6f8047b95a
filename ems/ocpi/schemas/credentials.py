"""The Versions and Credentials modules: version lists and details, and the credentials
exchanged at registration.

Apart because they are the handshake, used before and independently of any data module.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field, field_validator

from ems.ocpi.schemas.common import (
    URL,
    BusinessDetails,
    CiString2,
    CiString3,
    CredentialsToken,
    OcpiModel,
)


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
