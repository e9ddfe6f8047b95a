"""Server-rendered pages: admin log-in, diagram editor and dashboard, and the driver widget."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.ui import auth, dashboard, driver, editor, groups
from api.ui.common import (
    UI_DIR,
    CsrfError,
    LazySessionMiddleware,
    LoginRequired,
    SecurityHeadersMiddleware,
    csrf_refused,
    login_redirect,
)
from ems.core.config import Settings


def install(app: FastAPI, settings: Settings) -> None:
    """Mount the pages, their static files, the admin session and the security headers."""
    app.add_middleware(
        LazySessionMiddleware,
        max_age_s=settings.admin_session_max_age_s,
        https_only=settings.public_url.startswith("https://"),
    )
    app.add_middleware(SecurityHeadersMiddleware)
    app.mount("/static", StaticFiles(directory=str(UI_DIR / "static")), name="static")

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return login_redirect(request, exc.next_path)

    @app.exception_handler(CsrfError)
    async def csrf_error(request: Request, exc: CsrfError) -> Response:
        return csrf_refused(request)

    @app.get("/", include_in_schema=False)
    def home() -> Response:
        return RedirectResponse("/admin", status_code=HTTPStatus.SEE_OTHER)

    for router in (
        auth.router,
        editor.router,
        dashboard.router,
        groups.router,
        driver.router,
        driver.api_router,
    ):
        app.include_router(router)
