"""The CPO's OCPI 2.2.1 HTTP interface (FastAPI): what the EMS calls.

versions and details; credentials (Receiver of the handshake when the EMS initiates, and PUT /
DELETE / GET after either way); sessions and locations SENDER (paginated lists with `Link`,
`X-Total-Count`, `X-Limit`, `date_from`/`date_to`); chargingprofiles RECEIVER
(`{url}{session_id}`: PUT, GET, DELETE). Every answer is an envelope and echoes X-Request-ID
and X-Correlation-ID; functional modules answer with routing headers. Tokens are strict Base64.

`GET /simulator/state` (outside `/ocpi`, no token) shows what the simulator did; it is for the
tests and the demo on loopback, not part of OCPI.
"""

# No `from __future__ import annotations` here: FastAPI must see the dependency aliases defined
# inside make_app() as objects, not as strings it would look up in the module.
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ems.ocpi.datetimes import format_ocpi_datetime, parse_ocpi_datetime
from ems.ocpi.schemas import Credentials, SetChargingProfile

from .cpo import CpoBackend
from .ocpi_client import OCPI_VERSION, OcpiCallError, presented_token

PAGE_LIMIT = 50
_SLASHES = re.compile(r"/{2,}")
_UNROUTED = ("/ocpi/versions", f"/ocpi/{OCPI_VERSION}/credentials")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


class OcpiFailure(Exception):
    def __init__(self, status_code: int, message: str, http_status: int = 200) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.http_status = http_status


class TransportMiddleware:
    """One `/` rule (`//` collapsed, trailing `/` dropped), trace ids echoed, routing headers set."""

    def __init__(self, app: ASGIApp, backend: CpoBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _SLASHES.sub("/", scope["path"])
        if len(path) > 1:
            path = path.rstrip("/")
        scope = dict(scope, path=path, raw_path=path.encode())
        if not path.startswith("/ocpi/"):
            await self.app(scope, receive, send)
            return
        request_headers = {k.lower(): v for k, v in scope["headers"]}
        echo = [
            (b"x-request-id", request_headers.get(b"x-request-id") or str(uuid.uuid4()).encode()),
            (b"x-correlation-id", request_headers.get(b"x-correlation-id") or str(uuid.uuid4()).encode()),
        ]
        if path.startswith(f"/ocpi/{OCPI_VERSION}/") and not path.startswith(_UNROUTED):
            echo += [
                (b"ocpi-from-country-code", self.backend.country_code.encode()),
                (b"ocpi-from-party-id", self.backend.party_id.encode()),
            ]
            for name in (b"country-code", b"party-id"):
                if b"ocpi-from-" + name in request_headers:
                    echo.append((b"ocpi-to-" + name, request_headers[b"ocpi-from-" + name]))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *echo])
            await send(message)

        await self.app(scope, receive, send_with_headers)


def envelope(
    data: Any = None,
    status_code: int = 1000,
    message: str | None = None,
    http_status: int = 200,
    headers: dict[str, str] | None = None,
    *,
    with_data: bool = True,
    now: datetime | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {}
    if with_data and data is not None:
        body["data"] = data
    body["status_code"] = status_code
    if message:
        body["status_message"] = message
    body["timestamp"] = format_ocpi_datetime(now or datetime.now().astimezone())
    return JSONResponse(body, status_code=http_status, headers=headers)


def make_app(backend: CpoBackend) -> FastAPI:
    app = FastAPI(title="CPO simulator (OCPI 2.2.1 CPO)", redirect_slashes=False)
    app.add_middleware(TransportMiddleware, backend=backend)
    base = f"/ocpi/{OCPI_VERSION}"

    def reply(data: Any = None, **kwargs: Any) -> JSONResponse:
        return envelope(data, now=backend.clock.now(), **kwargs)

    def token_of(authorization: str | None) -> str:
        token = presented_token(authorization)
        if token is None:
            raise OcpiFailure(2000, "missing token, or not `Token <Base64 of the token>`", 401)
        return token

    def any_caller(authorization: Annotated[str | None, Header()] = None) -> str:
        """Versions, details, credentials: our token A (if handed out) or the registered token."""
        token = token_of(authorization)
        reg = backend.registration
        if token in {t for t in (reg.token_a, reg.incoming) if t}:
            return token
        raise OcpiFailure(2000, "unknown token", 401)

    def registered_caller(authorization: Annotated[str | None, Header()] = None) -> str:
        token = token_of(authorization)
        reg = backend.registration
        if reg.status != "REGISTERED" or token != reg.incoming:
            raise OcpiFailure(2000, "unknown token, or not registered", 401)
        return token

    AnyCaller = Annotated[str, Depends(any_caller)]
    Registered = Annotated[str, Depends(registered_caller)]

    @app.exception_handler(OcpiFailure)
    async def ocpi_failure(request: Request, exc: OcpiFailure) -> JSONResponse:
        return reply(status_code=exc.status_code, message=exc.message, http_status=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return reply(status_code=2001, message="the body is not valid JSON", http_status=400)
        text = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg')}"
            for e in errors[:5]
        )
        return reply(status_code=2001, message=text)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return reply(status_code=2000, message=str(exc.detail), http_status=exc.status_code)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "registration": backend.registration.status}

    @app.get("/simulator/state", include_in_schema=False)
    async def simulator_state() -> dict[str, Any]:
        return {"registration": backend.registration.status, **backend.state.snapshot()}

    # ---- versions and credentials -----------------------------------------------------------

    @app.get("/ocpi/versions")
    async def versions(_: AnyCaller) -> JSONResponse:
        return reply([{"version": OCPI_VERSION, "url": backend.base_url}])

    @app.get(base)
    async def version_details(_: AnyCaller) -> JSONResponse:
        return reply({"version": OCPI_VERSION, "endpoints": backend.endpoints()})

    @app.get(f"{base}/credentials")
    async def get_credentials(token: AnyCaller) -> JSONResponse:
        return reply(backend.credentials(token))

    async def _register(body: Credentials, renew: bool) -> JSONResponse:
        try:
            ours = await backend.accept_registration(body.model_dump(mode="json", exclude_none=True), renew)
        except OcpiCallError as exc:
            return reply(status_code=3001, message=f"cannot use your API: {exc}")
        return reply(ours)

    @app.post(f"{base}/credentials")
    async def post_credentials(token: AnyCaller, body: Credentials) -> JSONResponse:
        if token != backend.registration.token_a:
            raise OcpiFailure(2000, "already registered: use PUT", 405)
        return await _register(body, renew=False)

    @app.put(f"{base}/credentials")
    async def put_credentials(token: AnyCaller, body: Credentials) -> JSONResponse:
        if backend.registration.status != "REGISTERED" or token != backend.registration.incoming:
            raise OcpiFailure(2000, "not registered: use POST", 405)
        return await _register(body, renew=True)

    @app.delete(f"{base}/credentials")
    async def delete_credentials(token: AnyCaller) -> JSONResponse:
        if backend.registration.status != "REGISTERED" or token != backend.registration.incoming:
            raise OcpiFailure(2000, "not registered", 405)
        backend.unregister()
        return reply()

    # ---- sessions and locations SENDER -------------------------------------------------------

    def page(
        request: Request,
        items: list[dict[str, Any]],
        date_from: str | None,
        date_to: str | None,
        offset: int,
        limit: int | None,
    ) -> JSONResponse:
        try:
            since = parse_ocpi_datetime(date_from) if date_from else None
            until = parse_ocpi_datetime(date_to) if date_to else None
        except ValueError as exc:
            return reply(status_code=2001, message=str(exc))
        selected = [
            i
            for i in items
            if (since is None or parse_ocpi_datetime(i["last_updated"]) >= since)
            and (until is None or parse_ocpi_datetime(i["last_updated"]) < until)
        ]
        size = min(limit or PAGE_LIMIT, PAGE_LIMIT)
        chunk = selected[offset : offset + size]
        headers = {"X-Total-Count": str(len(selected)), "X-Limit": str(PAGE_LIMIT)}
        if offset + size < len(selected):
            query = {k: v for k, v in (("date_from", date_from), ("date_to", date_to)) if v}
            query |= {"offset": str(offset + size), "limit": str(size)}
            headers["Link"] = f'<{backend.public_url}{request.url.path}?{urlencode(query)}>; rel="next"'
        return reply(chunk, headers=headers)

    @app.get(f"{base}/sessions")
    async def list_sessions(
        request: Request,
        _: Registered,
        date_from: str,
        date_to: str | None = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> JSONResponse:
        items = [backend.session_object(s) for s in backend.sessions.values()]
        return page(request, items, date_from, date_to, offset, limit)

    @app.get(f"{base}/locations")
    async def list_locations(
        request: Request,
        _: Registered,
        date_from: str | None = None,
        date_to: str | None = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int | None, Query(ge=1)] = None,
    ) -> JSONResponse:
        return page(request, [backend.location_object()], date_from, date_to, offset, limit)

    @app.get(f"{base}/locations/{{location_id}}")
    async def get_location(_: Registered, location_id: str) -> JSONResponse:
        if location_id != backend.location_id:
            raise OcpiFailure(2003, f"unknown location {location_id}", 404)
        return reply(backend.location_object())

    @app.get(f"{base}/locations/{{location_id}}/{{evse_uid}}")
    async def get_evse(_: Registered, location_id: str, evse_uid: str) -> JSONResponse:
        location = backend.location_object()
        evse = next((e for e in location["evses"] if e["uid"] == evse_uid), None)
        if location_id != backend.location_id or evse is None:
            raise OcpiFailure(2003, f"unknown EVSE {location_id}/{evse_uid}", 404)
        return reply(evse)

    @app.get(f"{base}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}")
    async def get_connector(
        _: Registered, location_id: str, evse_uid: str, connector_id: str
    ) -> JSONResponse:
        location = backend.location_object()
        evse = next((e for e in location["evses"] if e["uid"] == evse_uid), None)
        connector = next((c for c in (evse or {}).get("connectors", []) if c["id"] == connector_id), None)
        if location_id != backend.location_id or connector is None:
            raise OcpiFailure(2003, f"unknown connector {location_id}/{evse_uid}/{connector_id}", 404)
        return reply(connector)

    # ---- chargingprofiles RECEIVER -----------------------------------------------------------

    @app.put(f"{base}/chargingprofiles/{{session_id}}")
    async def put_profile(
        _: Registered, session_id: str, body: Annotated[dict[str, Any], Body()]
    ) -> JSONResponse:
        try:
            request = SetChargingProfile.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            return reply(status_code=2001, message=f"{where}: {first['msg']}")
        return reply(backend.set_profile(session_id, request.charging_profile, request.response_url))

    @app.get(f"{base}/chargingprofiles/{{session_id}}")
    async def get_profile(
        _: Registered, session_id: str, duration: Annotated[int, Query(ge=1)], response_url: str
    ) -> JSONResponse:
        return reply(backend.get_profile(session_id, duration, response_url))

    @app.delete(f"{base}/chargingprofiles/{{session_id}}")
    async def delete_profile(_: Registered, session_id: str, response_url: str) -> JSONResponse:
        return reply(backend.clear_profile(session_id, response_url))

    @app.api_route(
        "/ocpi/{rest:path}", methods=["GET", "PUT", "PATCH", "POST", "DELETE"], include_in_schema=False
    )
    async def unknown(rest: str) -> JSONResponse:
        return reply(
            status_code=2000, message=f"no such OCPI endpoint: /ocpi/{rest}", http_status=HTTPStatus.NOT_FOUND
        )

    return app
