"""OCPI 2.2.1 status codes (the ``status_code`` of every response envelope).

Named constants so no handler writes a bare ``2001``. Ranges per the spec: 1xxx success,
2xxx client errors, 3xxx server errors, 4xxx hub errors; x9xx are free for custom codes.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["OcpiStatus", "is_client_error", "is_hub_error", "is_server_error", "is_success"]


class OcpiStatus(IntEnum):
    """The status codes OCPI 2.2.1 defines (``status_codes.asciidoc``)."""

    SUCCESS = 1000
    """Generic success."""

    CLIENT_ERROR = 2000
    """Generic client error."""
    INVALID_OR_MISSING_PARAMETERS = 2001
    """Invalid or missing parameters, e.g. a PATCH without ``last_updated`` or valid JSON with
    invalid content on an existing object (answered with HTTP 200, not 4xx)."""
    NOT_ENOUGH_INFORMATION = 2002
    """Not enough information, e.g. an authorization request with too little data."""
    UNKNOWN_LOCATION = 2003
    """Unknown Location, e.g. a command or token authorisation for a Location we don't know."""
    UNKNOWN_TOKEN = 2004
    """Unknown Token."""

    SERVER_ERROR = 3000
    """Generic server error."""
    UNABLE_TO_USE_CLIENT_API = 3001
    """Unable to use the client's API: during registration the call-back GETs failed."""
    UNSUPPORTED_VERSION = 3002
    """Unsupported version."""
    NO_MATCHING_ENDPOINTS = 3003
    """No matching endpoints or expected endpoints missing between the parties."""

    HUB_GENERIC_ERROR = 4000
    """Generic hub error (new in 2.2.1)."""
    HUB_UNKNOWN_RECEIVER = 4001
    """The receiver in the ``OCPI-to-*`` routing headers is not known to the hub."""
    HUB_TIMEOUT_ON_FORWARDED_MESSAGE = 4002
    """The hub forwarded the request but the receiver did not answer in time."""
    HUB_CONNECTION_PROBLEM = 4003
    """The receiver is known to the hub but not connected."""


def is_success(code: int) -> bool:
    """1000-1999: success, including custom 19xx codes."""
    return 1000 <= code <= 1999


def is_client_error(code: int) -> bool:
    """2000-2999: the request was wrong."""
    return 2000 <= code <= 2999


def is_server_error(code: int) -> bool:
    """3000-3999: the server could not handle a valid request."""
    return 3000 <= code <= 3999


def is_hub_error(code: int) -> bool:
    """4000-4999: a hub could not route the request."""
    return 4000 <= code <= 4999
