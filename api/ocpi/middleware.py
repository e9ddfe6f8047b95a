"""Transport rules shared by every OCPI request, as plain ASGI so the hot path stays cheap.

- one `/` rule: `//` collapsed and a trailing `/` dropped, so `{url}{id}` and `{url}/{id}/` route alike;
- bodies over the limit refused whole, before any handler runs (HTTP 413, envelope); the same
  limit holds on the admin and driver APIs under `/api/` (HTTP 413, `{"detail": ...}`);
- a body that stops coming refused after `body_timeout_s` (HTTP 408): a silent client keeps no
  connection forever;
- X-Request-ID and X-Correlation-ID echoed (made up if the caller sent none);
- routing headers on functional modules' responses: FROM us, TO the caller;
- every OCPI request counted and timed by module, method and status (`ems.core.metrics`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ems.core.logs import log_context
from ems.ocpi.datetimes import format_ocpi_datetime
from ems.ocpi.status import OcpiStatus
from ems.store.base import utcnow

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_SLASHES = re.compile(r"/{2,}")
_UNROUTED = ("/ocpi/versions", "/ocpi/2.2.1/credentials")
_LIMITED = ("/ocpi/", "/api/")
"""Paths whose request bodies are read whole and refused over the limit."""
logger = logging.getLogger("api.ocpi.requests")
_MODULES = frozenset(
    {"credentials", "sessions", "locations", "chargingprofiles", "tokens", "cdrs", "tariffs"}
)


def ocpi_module(path: str) -> str:
    """The metrics label of an OCPI path: its module, `versions`, or `other` (bounded labels)."""
    parts = path.split("/")  # "", "ocpi", version or "versions", module, ...
    if len(parts) <= 3:
        return "versions"
    return parts[3] if parts[3] in _MODULES else "other"


class OcpiTransportMiddleware:
    def __init__(
        self, app: ASGIApp, country_code: str, party_id: str, max_body_bytes: int, body_timeout_s: float
    ) -> None:
        self.app = app
        self.country_code = country_code.encode()
        self.party_id = party_id.encode()
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        normal = _SLASHES.sub("/", path)
        if len(normal) > 1:
            normal = normal.rstrip("/")
        if normal != path:
            scope = dict(scope)
            scope["path"] = normal
            scope["raw_path"] = normal.encode()
        if not normal.startswith(_LIMITED):
            await self.app(scope, receive, send)
            return

        request_headers = {k.lower(): v for k, v in scope["headers"]}
        if normal.startswith("/ocpi/"):
            await self._counted(scope, receive, send, normal, request_headers)
            return
        await self._limited(scope, receive, send, normal, request_headers)

    async def _counted(
        self, scope: Scope, receive: Receive, send: Send, path: str, request_headers: dict[bytes, bytes]
    ) -> None:
        """An OCPI request: counted, timed and logged with its ids (every line logged while it is
        served carries them too)."""
        started = time.perf_counter()
        status = 500  # what the client sees if the app fails before answering
        request_id = request_headers.get(b"x-request-id") or str(uuid.uuid4()).encode()
        correlation_id = request_headers.get(b"x-correlation-id") or str(uuid.uuid4()).encode()

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        ids = {"request_id": request_id.decode("latin-1"), "correlation_id": correlation_id.decode("latin-1")}
        with log_context(**ids):
            try:
                await self._limited(
                    scope, receive, send_counting, path, request_headers, ids=(request_id, correlation_id)
                )
            finally:
                elapsed_s = time.perf_counter() - started
                module, method = ocpi_module(path), str(scope["method"])
                context = getattr(scope["app"].state, "ems", None)
                if context is not None:
                    context.metrics.ocpi_requests.labels(module, method, str(status)).inc()
                    context.metrics.ocpi_request_seconds.labels(module, method).observe(elapsed_s)
                logger.info(
                    "OCPI %s %s -> %d in %.1f ms",
                    method,
                    path,
                    status,
                    elapsed_s * 1000.0,
                    extra={"method": method, "path": path, "status": status, "ocpi_module": module},
                )

    async def _limited(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        normal: str,
        request_headers: dict[bytes, bytes],
        ids: tuple[bytes, bytes] | None = None,
    ) -> None:
        """The body rules; `ids` (request and correlation id) are echoed on OCPI paths."""
        ocpi = ids is not None
        echo: list[tuple[bytes, bytes]] = []
        if ids is not None:
            echo += [(b"x-request-id", ids[0]), (b"x-correlation-id", ids[1])]
        routed = normal.startswith("/ocpi/2.2.1/") and not normal.startswith(_UNROUTED)
        if routed:
            echo += [(b"ocpi-from-country-code", self.country_code), (b"ocpi-from-party-id", self.party_id)]
            if b"ocpi-from-country-code" in request_headers:
                echo.append((b"ocpi-to-country-code", request_headers[b"ocpi-from-country-code"]))
            if b"ocpi-from-party-id" in request_headers:
                echo.append((b"ocpi-to-party-id", request_headers[b"ocpi-from-party-id"]))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + echo
            await send(message)

        length = request_headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(send_with_headers, ocpi)
            return

        # Read the whole body first (it is at most the limit): a request is taken whole or refused whole.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            try:
                async with asyncio.timeout(self.body_timeout_s):  # no task per chunk, unlike wait_for
                    message = await receive()
            except TimeoutError:
                await self._refuse(
                    send_with_headers,
                    ocpi,
                    408,
                    f"request body incomplete after {self.body_timeout_s:g} s: refused",
                )
                return
            if message["type"] != "http.request":
                await self.app(scope, receive, send_with_headers)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(send_with_headers, ocpi)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)

    async def _too_large(self, send: Send, ocpi: bool) -> None:
        await self._refuse(send, ocpi, 413, f"request body over {self.max_body_bytes} bytes: refused")

    async def _refuse(self, send: Send, ocpi: bool, http_status: int, message: str) -> None:
        """A refusal before any handler ran: the envelope (2000) on OCPI, `{"detail"}` elsewhere."""
        if ocpi:
            payload: dict[str, Any] = {
                "status_code": int(OcpiStatus.CLIENT_ERROR),
                "status_message": message,
                "timestamp": format_ocpi_datetime(utcnow()),
            }
        else:
            payload = {"detail": message}
        body = json.dumps(payload).encode()
        await send(
            {
                "type": "http.response.start",
                "status": http_status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
