"""The FastAPI application: OCPI 2.2.1 SCSP endpoints, the admin API, and the admin and driver pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import metrics as api_metrics
from api import ui
from api.admin import groups as admin_groups
from api.admin import sites as admin_sites
from api.ocpi.envelope import envelope
from api.ocpi.middleware import OcpiTransportMiddleware
from api.ocpi.v2_2_1 import chargingprofiles, credentials, locations, sessions, versions
from ems.cluster.forward import EventForwarder
from ems.cluster.tasks import celery_app
from ems.core.config import Settings, get_settings
from ems.core.context import EmsContext
from ems.ocpi.errors import OcpiError
from ems.ocpi.status import OcpiStatus
from ems.planning.runtime import Runtime


def _is_ocpi(request: Request) -> bool:
    return request.url.path.startswith("/ocpi/")


def _field_errors(errors: list[Any]) -> str:
    parts = []
    for error in errors[:10]:
        loc = [str(p) for p in error.get("loc", ()) if p != "body"]
        parts.append(f"{'.'.join(loc) or 'body'}: {error.get('msg')}")
    more = f" (and {len(errors) - 10} more)" if len(errors) > 10 else ""
    return "; ".join(parts) + more


def create_app(
    settings: Settings | None = None, *, context: EmsContext | None = None, background: bool = True
) -> FastAPI:
    """The app; `background=False` leaves out the planner, dispatch and scheduled jobs (API tests)."""
    settings = settings or (context.settings if context else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context or EmsContext.create(settings)
        app.state.ems = ctx
        runtime: Runtime | EventForwarder | None = None
        if background:
            # With a broker, workers plan and dispatch: this replica only stores and forwards.
            runtime = (
                EventForwarder(ctx, celery_app(ctx.settings)) if ctx.settings.broker_url else Runtime(ctx)
            )
        app.state.runtime = runtime
        if runtime is not None:
            runtime.start()
        try:
            yield
        finally:
            if runtime is not None:
                runtime.stop()
            if context is None:
                ctx.close()

    app = FastAPI(
        title="Smart-charging EMS (OCPI 2.2.1 SCSP)",
        version="0.1.0",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    if context is not None:
        app.state.ems = context
    app.add_middleware(
        OcpiTransportMiddleware,
        country_code=settings.country_code,
        party_id=settings.party_id,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.request_body_timeout_s,
    )

    @app.exception_handler(OcpiError)
    async def ocpi_error(request: Request, exc: OcpiError) -> JSONResponse:
        return envelope(status_code=exc.status_code, status_message=exc.message, http_status=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if not _is_ocpi(request):
            return JSONResponse({"detail": errors}, status_code=HTTPStatus.UNPROCESSABLE_ENTITY)
        if any(e.get("type") == "json_invalid" for e in errors):
            return envelope(
                status_code=OcpiStatus.INVALID_OR_MISSING_PARAMETERS,
                status_message="the body is not valid JSON",
                http_status=HTTPStatus.BAD_REQUEST,
            )
        # Valid JSON with invalid content: OCPI wants the error in status_code, not an HTTP error.
        return envelope(
            status_code=OcpiStatus.INVALID_OR_MISSING_PARAMETERS, status_message=_field_errors(errors)
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if not _is_ocpi(request):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
        return envelope(
            status_code=OcpiStatus.CLIENT_ERROR, status_message=str(exc.detail), http_status=exc.status_code
        )

    @app.exception_handler(OperationalError)
    async def database_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # Locked past its timeout, read-only, or the server gone: the transaction was rolled
        # back, so the sender is told to retry, never acknowledged.
        message = "database unavailable, nothing was stored: retry later"
        headers = {"Retry-After": "5"}
        if not _is_ocpi(request):
            return JSONResponse(
                {"detail": message}, status_code=HTTPStatus.SERVICE_UNAVAILABLE, headers=headers
            )
        return envelope(
            status_code=OcpiStatus.SERVER_ERROR,
            status_message=message,
            http_status=HTTPStatus.SERVICE_UNAVAILABLE,
            headers=headers,
        )

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return envelope(
            status_code=OcpiStatus.SERVER_ERROR,
            status_message=f"internal error: {exc.__class__.__name__}",
            http_status=HTTPStatus.INTERNAL_SERVER_ERROR,
        )

    for router in (
        versions.router,
        credentials.router,
        sessions.router,
        locations.router,
        chargingprofiles.router,
        admin_sites.router,
        admin_groups.router,
        api_metrics.router,
    ):
        app.include_router(router)

    ui.install(app, settings)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
