"""Counts what each SCSP asked of the bench's OCPI interface and what the bench had to refuse.

An ASGI middleware in front of the CPO simulator's app (`examples.cpo_simulator.ocpi_app`): it
reads each `/ocpi/...` answer's HTTP status and OCPI `status_code`, so an SCSP that sends
garbage, calls unknown endpoints or uses a wrong token is scored from the wire, whatever the
app's own handlers did with the request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from bench_cpo.backend import Ledger

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
MAX_READ_BYTES = 8_000_000
"""Envelopes are small, but a page of Sessions with their charging periods is not; beyond this
an answer is not read (its status and ids go uncounted)."""


def module_of(path: str) -> str:
    """`/ocpi/2.2.1/chargingprofiles/s1` → `chargingprofiles`; `/ocpi/versions` → `versions`."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "ocpi":
        return parts[2]
    return parts[1] if len(parts) == 2 and parts[0] == "ocpi" else "details"


class TrafficMiddleware:
    def __init__(self, app: ASGIApp, ledger: Ledger) -> None:
        self.app = app
        self.ledger = ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith("/ocpi"):
            await self.app(scope, receive, send)
            return
        http_status = 500
        body = bytearray()

        async def watch(message: Message) -> None:
            nonlocal http_status
            if message["type"] == "http.response.start":
                http_status = int(message["status"])
            elif message["type"] == "http.response.body" and len(body) < MAX_READ_BYTES:
                body.extend(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            self._count(str(scope["method"]), str(scope["path"]), http_status, bytes(body))

    def _count(self, method: str, path: str, http_status: int, body: bytes) -> None:
        self.ledger.requests += 1
        try:
            envelope = json.loads(body) if body else {}
        except ValueError:
            envelope = {}
        code = envelope.get("status_code") if isinstance(envelope, dict) else None
        if http_status < 400 and isinstance(code, int) and 1000 <= code < 2000:
            data = envelope.get("data")
            if method == "GET" and module_of(path) == "sessions" and isinstance(data, list):
                self.ledger.pulled.update(str(s.get("id")) for s in data if isinstance(s, dict))
            return
        module = module_of(path)
        key = f"{method} {module} HTTP {http_status} OCPI {code}"
        self.ledger.error_answers[key] = self.ledger.error_answers.get(key, 0) + 1
        if module == "chargingprofiles" and method == "PUT" and http_status in (200, 400) and code == 2001:
            self.ledger.malformed_profiles += 1
