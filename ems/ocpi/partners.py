"""OCPI parties and the credentials handshake, both ways.

A CPO registers with us: `invite` hands out token A; the CPO POSTs its credentials (token B)
with A; we fetch its endpoints with B and answer with our token C. We register with a CPO:
`register_with` fetches its endpoints with the A it gave us, stores our B *before* posting (the
CPO calls our versions back with B while our POST is still open), and keeps the C it returns.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ems.core.context import EmsContext
from ems.ocpi.client import OcpiClient, Party
from ems.ocpi.errors import OcpiClientError, OcpiError
from ems.ocpi.status import OcpiStatus
from ems.ocpi.tokens import new_token, presented_tokens, token_digest, tokens_equal
from ems.ocpi.urls import join_url
from ems.store.db import transaction
from ems.store.models import Partner

OCPI_VERSION = "2.2.1"

REQUIRED_CPO_ENDPOINTS = (("chargingprofiles", "RECEIVER"),)
"""What we cannot work without: the CPO's receiver for the profiles we plan."""


class PartnerStatus:
    INVITED = "INVITED"
    REGISTERING = "REGISTERING"
    REGISTERED = "REGISTERED"
    UNREGISTERED = "UNREGISTERED"


@dataclass(frozen=True)
class Caller:
    """Who is calling, and with which kind of token."""

    partner_id: int
    with_token_a: bool
    status: str
    parties: frozenset[tuple[str, str]]
    """Every (country_code, party_id) the partner registered: the objects it may push."""

    @classmethod
    def of(cls, partner: Partner, with_token_a: bool) -> Caller:
        parties = {(partner.country_code, partner.party_id)} | {
            (str(r.get("country_code", "")).upper(), str(r.get("party_id", "")).upper())
            for r in partner.roles
        }
        return cls(partner.id, with_token_a, partner.status, frozenset(parties))


@dataclass(frozen=True)
class Invitation:
    partner_id: int
    token_a: str
    versions_url: str


def own_versions(ctx: EmsContext) -> list[dict[str, str]]:
    return [{"version": OCPI_VERSION, "url": join_url(ctx.settings.ocpi_base_url, OCPI_VERSION)}]


def own_endpoints(ctx: EmsContext) -> list[dict[str, str]]:
    """The modules we serve. chargingprofiles ends in `/`: the spec builds `{url}{session_id}`."""
    base = join_url(ctx.settings.ocpi_base_url, OCPI_VERSION)
    return [
        {"identifier": "credentials", "role": "SENDER", "url": join_url(base, "credentials")},
        {"identifier": "sessions", "role": "RECEIVER", "url": join_url(base, "sessions")},
        {"identifier": "locations", "role": "RECEIVER", "url": join_url(base, "locations")},
        {"identifier": "chargingprofiles", "role": "SENDER", "url": join_url(base, "chargingprofiles") + "/"},
        # Extension: PUT {url}/{cc}/{pid}/{session_id}/charging_preferences (see docs/ocpi.md).
        {"identifier": "x-scsp-chargingpreferences", "role": "RECEIVER", "url": join_url(base, "sessions")},
    ]


def own_credentials(ctx: EmsContext, token: str) -> dict[str, Any]:
    settings = ctx.settings
    return {
        "token": token,
        "url": settings.versions_url,
        "roles": [
            {
                "role": "SCSP",
                "business_details": {"name": settings.business_name},
                "party_id": settings.party_id,
                "country_code": settings.country_code,
            }
        ],
    }


def invite(ctx: EmsContext, country_code: str, party_id: str, role: str) -> Invitation:
    """Create a partner and the token A it registers with."""
    token_a = new_token()
    with transaction(ctx.db) as db:
        partner = Partner(
            country_code=country_code.upper(),
            party_id=party_id.upper(),
            role=role.upper(),
            status=PartnerStatus.INVITED,
            roles=[],
            endpoints=[],
            token_a=token_a,
            token_a_sha256=token_digest(token_a),
        )
        db.add(partner)
        db.flush()
        partner_id = partner.id
    return Invitation(partner_id=partner_id, token_a=token_a, versions_url=ctx.settings.versions_url)


_AUTH_CACHE_TTL_S = 5.0
_auth_cache: dict[str, tuple[float, Caller]] = {}
_auth_cache_lock = threading.Lock()


def forget_callers() -> None:
    """Drop cached authentications: called on every change of a partner's tokens or status."""
    with _auth_cache_lock:
        _auth_cache.clear()


def authenticate(ctx: EmsContext, authorization: str | None) -> Caller | None:
    """The partner a request's Authorization header belongs to, or None.

    Tokens are looked up by their SHA-256 and then compared in constant time. A registered
    caller is remembered for a few seconds (the push hot path); any token change made by this
    process forgets it at once, and one made elsewhere (the CLI) within the TTL.
    """
    candidates = presented_tokens(authorization)
    if not candidates:
        return None
    now = time.monotonic()
    with _auth_cache_lock:
        for token in candidates:
            cached = _auth_cache.get(token)
            if cached is not None and cached[0] > now:
                return cached[1]
    with ctx.db() as db:
        for token in candidates:
            digest = token_digest(token)
            partner = db.scalars(
                select(Partner).where(
                    (Partner.token_incoming_sha256 == digest) | (Partner.token_a_sha256 == digest)
                )
            ).first()
            if partner is None:
                continue
            if partner.status in (PartnerStatus.REGISTERED, PartnerStatus.REGISTERING) and tokens_equal(
                token, partner.token_incoming
            ):
                caller = Caller.of(partner, with_token_a=False)
                if partner.status == PartnerStatus.REGISTERED:
                    with _auth_cache_lock:
                        _auth_cache[token] = (now + _AUTH_CACHE_TTL_S, caller)
                return caller
            if partner.status == PartnerStatus.INVITED and tokens_equal(token, partner.token_a):
                return Caller.of(partner, with_token_a=True)
    return None


def fetch_endpoints(client: OcpiClient, versions_url: str) -> tuple[str, list[dict[str, Any]]]:
    """GET the partner's versions and its 2.2.1 details; OCPI 3001/3002 when that fails."""
    try:
        versions = client.get(versions_url, routed=False).data
    except OcpiClientError as exc:
        raise OcpiError(OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"cannot GET your versions: {exc}") from exc
    if not isinstance(versions, list):
        raise OcpiError(OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"{versions_url} did not return a version list")
    details_url = next(
        (str(v.get("url")) for v in versions if isinstance(v, dict) and v.get("version") == OCPI_VERSION),
        None,
    )
    if details_url is None:
        offered = ", ".join(str(v.get("version")) for v in versions if isinstance(v, dict))
        raise OcpiError(OcpiStatus.UNSUPPORTED_VERSION, f"no OCPI {OCPI_VERSION} offered (got: {offered})")
    try:
        details = client.get(details_url, routed=False).data
    except OcpiClientError as exc:
        raise OcpiError(
            OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"cannot GET your version details: {exc}"
        ) from exc
    endpoints = details.get("endpoints") if isinstance(details, dict) else None
    if not isinstance(endpoints, list) or not all(
        isinstance(e, dict) and {"identifier", "role", "url"} <= e.keys() for e in endpoints
    ):
        raise OcpiError(OcpiStatus.UNABLE_TO_USE_CLIENT_API, f"{details_url} returned no valid endpoints")
    return OCPI_VERSION, endpoints


def _require_endpoints(endpoints: list[dict[str, Any]]) -> None:
    offered = {(e["identifier"], e["role"]) for e in endpoints}
    missing = [f"{module} {role}" for module, role in REQUIRED_CPO_ENDPOINTS if (module, role) not in offered]
    if missing:
        raise OcpiError(OcpiStatus.NO_MATCHING_ENDPOINTS, "missing endpoints we need: " + ", ".join(missing))


def _matching_role(roles: list[dict[str, Any]], country_code: str, party_id: str) -> dict[str, Any] | None:
    for role in roles:
        if (
            str(role.get("country_code", "")).upper() == country_code
            and str(role.get("party_id", "")).upper() == party_id
        ):
            return role
    return None


def _client_for(ctx: EmsContext, http: Any, token: str, encoding: str) -> OcpiClient:
    return OcpiClient(http, token, encoding, sender=Party(ctx.settings.country_code, ctx.settings.party_id))


def _get_partner(db: Session, partner_id: int) -> Partner:
    partner = db.get(Partner, partner_id, with_for_update=True)
    if partner is None:
        raise OcpiError(OcpiStatus.CLIENT_ERROR, "unknown partner", HTTPStatus.UNAUTHORIZED)
    return partner


def accept_registration(ctx: EmsContext, caller: Caller, credentials: dict[str, Any]) -> dict[str, Any]:
    """A credentials POST: the caller (holding token A) registers with us."""
    if not caller.with_token_a:
        raise OcpiError(OcpiStatus.CLIENT_ERROR, "already registered: use PUT to update", 405)
    return _register(
        ctx, caller, credentials, expected_status=PartnerStatus.INVITED, party="the party invited"
    )


def update_registration(ctx: EmsContext, caller: Caller, credentials: dict[str, Any]) -> dict[str, Any]:
    """A credentials PUT: new token and URLs; we re-fetch the endpoints and rotate our token."""
    if caller.with_token_a or caller.status != PartnerStatus.REGISTERED:
        raise OcpiError(OcpiStatus.CLIENT_ERROR, "not registered: use POST to register", 405)
    return _register(
        ctx, caller, credentials, expected_status=PartnerStatus.REGISTERED, party="the registered party"
    )


def _register(
    ctx: EmsContext, caller: Caller, credentials: dict[str, Any], *, expected_status: str, party: str
) -> dict[str, Any]:
    """Both credentials POST and PUT: check the roles, fetch the caller's endpoints with its new
    token (outside any transaction: that is a network call), then store it all and issue our token."""
    with ctx.db() as db:
        partner = _get_partner(db, caller.partner_id)
        encoding = partner.token_encoding
        expected = (partner.country_code, partner.party_id)
    role = _matching_role(credentials["roles"], *expected)
    if role is None:
        raise OcpiError(
            OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
            f"roles: none for country_code {expected[0]} / party_id {expected[1]}, {party}",
        )
    with ctx.http_client() as http:
        version, endpoints = fetch_endpoints(
            _client_for(ctx, http, credentials["token"], encoding), credentials["url"]
        )
    _require_endpoints(endpoints)
    token = new_token()
    with transaction(ctx.db) as db:
        partner = _get_partner(db, caller.partner_id)
        if partner.status != expected_status:
            raise OcpiError(OcpiStatus.CLIENT_ERROR, f"registration state changed to {partner.status}", 405)
        _store_registration(partner, credentials, version, endpoints, token)
        partner.business_name = role.get("business_details", {}).get("name")
    forget_callers()
    return own_credentials(ctx, token)


def _store_registration(
    partner: Partner, credentials: dict[str, Any], version: str, endpoints: list[dict[str, Any]], token: str
) -> None:
    partner.token_outgoing = credentials["token"]
    partner.versions_url = credentials["url"]
    partner.roles = credentials["roles"]
    partner.version = version
    partner.endpoints = endpoints
    partner.token_incoming = token
    partner.token_incoming_sha256 = token_digest(token)
    partner.token_a = None
    partner.token_a_sha256 = None
    partner.status = PartnerStatus.REGISTERED


def unregister(ctx: EmsContext, caller: Caller) -> None:
    """A credentials DELETE: both sides stop talking; every token is void."""
    if caller.with_token_a or caller.status != PartnerStatus.REGISTERED:
        raise OcpiError(OcpiStatus.CLIENT_ERROR, "not registered", 405)
    with transaction(ctx.db) as db:
        partner = _get_partner(db, caller.partner_id)
        partner.status = PartnerStatus.UNREGISTERED
        partner.token_incoming = None
        partner.token_incoming_sha256 = None
        partner.token_outgoing = None
    forget_callers()


def current_credentials(ctx: EmsContext, caller: Caller) -> dict[str, Any]:
    """A credentials GET: our credentials with the token the caller uses with us."""
    with ctx.db() as db:
        partner = _get_partner(db, caller.partner_id)
        token = partner.token_a if caller.with_token_a else partner.token_incoming
    return own_credentials(ctx, token or "")


def register_with(
    ctx: EmsContext, versions_url: str, token_a: str, token_encoding: str = "base64"
) -> Partner:
    """We initiate: register this EMS with a CPO that gave us `versions_url` and token A."""
    with ctx.http_client() as http:
        client_a = _client_for(ctx, http, token_a, token_encoding)
        version, endpoints = fetch_endpoints(client_a, versions_url)
        credentials_url = next((e["url"] for e in endpoints if e["identifier"] == "credentials"), None)
        if credentials_url is None:
            raise OcpiError(OcpiStatus.NO_MATCHING_ENDPOINTS, f"{versions_url}: no credentials endpoint")
        _require_endpoints(endpoints)
        token_b = new_token()
        with transaction(ctx.db) as db:
            partner = Partner(
                country_code="",
                party_id="",
                role="CPO",
                status=PartnerStatus.REGISTERING,
                roles=[],
                endpoints=endpoints,
                version=version,
                versions_url=versions_url,
                token_incoming=token_b,
                token_incoming_sha256=token_digest(token_b),
                token_encoding=token_encoding,
            )
            db.add(partner)
            db.flush()
            partner_id = partner.id
        try:
            reply = client_a.request(
                "POST", credentials_url, body=own_credentials(ctx, token_b), routed=False
            )
            theirs = reply.data
            if not isinstance(theirs, dict) or not theirs.get("token") or not theirs.get("roles"):
                raise OcpiClientError(f"POST {credentials_url}: no credentials in the answer")
            role = next((r for r in theirs["roles"] if r.get("role") == "CPO"), theirs["roles"][0])
            if theirs.get("url") and theirs["url"] != versions_url:
                version, endpoints = fetch_endpoints(
                    _client_for(ctx, http, theirs["token"], token_encoding), theirs["url"]
                )
        except (OcpiClientError, OcpiError):
            with transaction(ctx.db) as db:
                stale = db.get(Partner, partner_id)
                if stale is not None:
                    db.delete(stale)
            raise
    with transaction(ctx.db) as db:
        partner = _get_partner(db, partner_id)
        partner.country_code = str(role["country_code"]).upper()
        partner.party_id = str(role["party_id"]).upper()
        partner.role = str(role["role"])
        partner.business_name = (role.get("business_details") or {}).get("name")
        partner.roles = theirs["roles"]
        partner.token_outgoing = theirs["token"]
        partner.versions_url = theirs.get("url") or versions_url
        partner.version = version
        partner.endpoints = endpoints
        partner.status = PartnerStatus.REGISTERED
    with ctx.db() as db:
        result = db.get(Partner, partner_id)
        assert result is not None
        return result


def partner_client(ctx: EmsContext, http: Any, partner: Partner) -> OcpiClient:
    """A client speaking to `partner` with the token it gave us."""
    if partner.status != PartnerStatus.REGISTERED or not partner.token_outgoing:
        raise OcpiClientError(f"partner {partner.id} is not registered")
    return OcpiClient(
        http,
        partner.token_outgoing,
        partner.token_encoding,
        sender=Party(ctx.settings.country_code, ctx.settings.party_id),
        receiver=Party(partner.country_code, partner.party_id),
    )


def list_partners(ctx: EmsContext) -> list[Partner]:
    with ctx.db() as db:
        return list(db.scalars(select(Partner).order_by(Partner.id)))
