"""Outgoing OCPI 2.2.1 calls of the CPO: headers, envelope, and the tokens of both directions.

Every request carries `Authorization: Token <Base64 of the token>` (exactly, no newline), a fresh
X-Request-ID and X-Correlation-ID, and on functional modules the four routing headers.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

OCPI_VERSION = "2.2.1"


def new_token() -> str:
    """43 URL-safe characters: printable ASCII without space, well under OCPI's 64."""
    return secrets.token_urlsafe(32)


def authorization(token: str) -> str:
    return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def presented_token(header: str | None) -> str | None:
    """The token of a strict OCPI 2.2.1 Authorization header, or None.

    Strict on purpose: the header must be `Token ` + the canonical Base64 of a printable token
    (a raw token or a Base64 with a trailing newline inside is refused), so a peer that gets
    the encoding wrong finds out here rather than at a stricter CPO.
    """
    if not header or not header.startswith("Token "):
        return None
    value = header[len("Token ") :]
    try:
        token = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not token or not token.isprintable() or token != token.strip() or authorization(token) != header:
        return None
    return token


class OcpiCallError(RuntimeError):
    def __init__(self, message: str, http_status: int | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status_code = status_code


@dataclass(frozen=True)
class Reply:
    http_status: int
    status_code: int | None
    status_message: str | None
    data: Any
    headers: httpx.Headers


@dataclass
class Registration:
    """Both directions of the credentials handshake, as the CPO holds them."""

    token_a: str | None = None
    """Ours, handed out so an EMS can register with us (we are the Receiver of the handshake)."""
    incoming: str | None = None
    """The token the EMS calls us with (B when we initiate, the C we issued when it does)."""
    outgoing: str | None = None
    """The token we call the EMS with."""
    status: str = "UNREGISTERED"
    versions_url: str | None = None
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    country_code: str | None = None
    party_id: str | None = None
    roles: list[dict[str, Any]] = field(default_factory=list)

    def endpoint(self, identifier: str, role: str | None = None) -> str | None:
        for e in self.endpoints:
            if e.get("identifier") == identifier and (role is None or e.get("role") == role):
                return str(e["url"])
        return None

    def take_credentials(self, credentials: dict[str, Any]) -> None:
        """The EMS's credentials: the token we call it with and who it is (its SCSP role)."""
        self.outgoing = str(credentials["token"])
        self.versions_url = str(credentials["url"])
        self.roles = list(credentials.get("roles") or [])
        role = next((r for r in self.roles if r.get("role") == "SCSP"), self.roles[0] if self.roles else {})
        self.country_code = str(role.get("country_code", "")).upper() or None
        self.party_id = str(role.get("party_id", "")).upper() or None


class EmsClient:
    """Talks to the registered EMS (or, with an explicit token, to one registering)."""

    def __init__(
        self, http: httpx.AsyncClient, country_code: str, party_id: str, registration: Registration
    ) -> None:
        self.http = http
        self.country_code = country_code
        self.party_id = party_id
        self.registration = registration

    def headers(self, token: str, routed: bool) -> dict[str, str]:
        headers = {
            "Authorization": authorization(token),
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": str(uuid.uuid4()),
        }
        reg = self.registration
        if routed:
            headers["OCPI-from-country-code"] = self.country_code
            headers["OCPI-from-party-id"] = self.party_id
            if reg.country_code and reg.party_id:
                headers["OCPI-to-country-code"] = reg.country_code
                headers["OCPI-to-party-id"] = reg.party_id
        return headers

    async def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        routed: bool = True,
        token: str | None = None,
        expect_success: bool = True,
    ) -> Reply:
        token = token or self.registration.outgoing
        if not token:
            raise OcpiCallError(f"{method} {url}: not registered with the EMS")
        headers = self.headers(token, routed)
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, separators=(",", ":")).encode("utf-8")
        try:
            response = await self.http.request(method, url, content=content, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise OcpiCallError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
        try:
            envelope = response.json()
        except ValueError:
            raise OcpiCallError(
                f"{method} {url}: HTTP {response.status_code}, not JSON", response.status_code
            ) from None
        if not isinstance(envelope, dict):
            raise OcpiCallError(
                f"{method} {url}: HTTP {response.status_code}, not an envelope", response.status_code
            )
        code = envelope.get("status_code")
        reply = Reply(
            response.status_code,
            code if isinstance(code, int) else None,
            envelope.get("status_message"),
            envelope.get("data"),
            response.headers,
        )
        if expect_success and (response.status_code >= 400 or not 1000 <= (reply.status_code or 0) < 2000):
            detail = f"OCPI {reply.status_code} {reply.status_message or ''}".rstrip()
            raise OcpiCallError(
                f"{method} {url}: HTTP {response.status_code}, {detail}",
                response.status_code,
                reply.status_code,
            )
        return reply

    async def fetch_endpoints(self, versions_url: str, token: str) -> list[dict[str, Any]]:
        """GET the versions list and the 2.2.1 details (no routing headers on these)."""
        versions = (await self.request("GET", versions_url, routed=False, token=token)).data
        if not isinstance(versions, list):
            raise OcpiCallError(f"{versions_url}: no version list")
        details_url = next(
            (v.get("url") for v in versions if isinstance(v, dict) and v.get("version") == OCPI_VERSION), None
        )
        if not details_url:
            raise OcpiCallError(f"{versions_url}: OCPI {OCPI_VERSION} not offered")
        details = (await self.request("GET", str(details_url), routed=False, token=token)).data
        endpoints = details.get("endpoints") if isinstance(details, dict) else None
        if not isinstance(endpoints, list):
            raise OcpiCallError(f"{details_url}: no endpoints")
        return [e for e in endpoints if isinstance(e, dict) and {"identifier", "role", "url"} <= e.keys()]
