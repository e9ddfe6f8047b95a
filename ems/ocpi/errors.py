"""Errors a service raises with the OCPI status code and HTTP status the spec prescribes."""

from __future__ import annotations

from http import HTTPStatus


class OcpiError(Exception):
    """Refuse a request: the API turns it into the response envelope, nothing is stored."""

    def __init__(self, status_code: int, message: str, http_status: int = HTTPStatus.OK) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.http_status = http_status


class OcpiClientError(Exception):
    """A call we made to a partner failed (transport, HTTP status or OCPI status)."""

    def __init__(self, message: str, http_status: int | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.status_code = status_code
