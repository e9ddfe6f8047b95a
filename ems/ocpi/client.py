"""Outgoing OCPI calls to a partner: the headers, the envelope, pagination.

Every request carries the partner's token in the form configured for it, a fresh X-Request-ID
and X-Correlation-ID, and — on functional modules — the four routing headers.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ems.ocpi.errors import OcpiClientError
from ems.ocpi.tokens import authorization_header

_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?', re.IGNORECASE)


@dataclass(frozen=True)
class Party:
    country_code: str
    party_id: str


@dataclass(frozen=True)
class OcpiReply:
    http_status: int
    status_code: int | None
    status_message: str | None
    data: Any
    headers: httpx.Headers


class OcpiClient:
    """Talks to one partner with one token. Routing headers go only where the spec wants them."""

    def __init__(
        self,
        http: httpx.Client,
        token: str,
        token_encoding: str = "base64",
        sender: Party | None = None,
        receiver: Party | None = None,
    ) -> None:
        self._http = http
        self._token = token
        self._token_encoding = token_encoding
        self._sender = sender
        self._receiver = receiver

    def _headers(self, routed: bool) -> dict[str, str]:
        headers = {
            "Authorization": authorization_header(self._token, self._token_encoding),
            "X-Request-ID": str(uuid.uuid4()),
            "X-Correlation-ID": str(uuid.uuid4()),
        }
        if routed and self._sender and self._receiver:
            headers["OCPI-from-country-code"] = self._sender.country_code
            headers["OCPI-from-party-id"] = self._sender.party_id
            headers["OCPI-to-country-code"] = self._receiver.country_code
            headers["OCPI-to-party-id"] = self._receiver.party_id
        return headers

    def request(
        self,
        method: str,
        url: str,
        *,
        body: Any = None,
        params: dict[str, Any] | None = None,
        routed: bool = True,
        expect_success: bool = True,
    ) -> OcpiReply:
        headers = self._headers(routed)
        content: bytes | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = json.dumps(body, separators=(",", ":")).encode("utf-8")
        try:
            response = self._http.request(method, url, content=content, params=params, headers=headers)
        except httpx.HTTPError as exc:
            raise OcpiClientError(f"{method} {url}: {exc.__class__.__name__}: {exc}") from exc
        try:
            envelope = response.json()
        except ValueError as exc:
            raise OcpiClientError(
                f"{method} {url}: HTTP {response.status_code}, the answer is not JSON",
                http_status=response.status_code,
            ) from exc
        if not isinstance(envelope, dict):
            raise OcpiClientError(
                f"{method} {url}: HTTP {response.status_code}, the answer is not an OCPI envelope",
                http_status=response.status_code,
            )
        status_code = envelope.get("status_code")
        reply = OcpiReply(
            http_status=response.status_code,
            status_code=status_code if isinstance(status_code, int) else None,
            status_message=envelope.get("status_message"),
            data=envelope.get("data"),
            headers=response.headers,
        )
        if expect_success and (response.status_code >= 400 or not (reply.status_code or 0) // 1000 == 1):
            raise OcpiClientError(
                f"{method} {url}: HTTP {response.status_code}, OCPI status {reply.status_code}"
                f" {reply.status_message or ''}".rstrip(),
                http_status=response.status_code,
                status_code=reply.status_code,
            )
        return reply

    def get(self, url: str, params: dict[str, Any] | None = None, routed: bool = True) -> OcpiReply:
        return self.request("GET", url, params=params, routed=routed)

    def paginate(self, url: str, params: dict[str, Any] | None = None) -> Iterator[Any]:
        """Every object of a paginated list, following the `Link: <...>; rel="next"` header."""
        next_url: str | None = url
        next_params = params
        pages = 0
        while next_url:
            reply = self.get(next_url, next_params)
            if not isinstance(reply.data, list):
                raise OcpiClientError(f"GET {next_url}: expected a list in `data`")
            yield from reply.data
            pages += 1
            if pages > 100_000:
                raise OcpiClientError(f"GET {url}: more than 100000 pages, giving up")
            match = _LINK_NEXT.search(reply.headers.get("Link", ""))
            next_url = match.group(1) if match else None
            next_params = None  # the next link repeats the filters
