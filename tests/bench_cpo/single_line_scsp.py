"""A deliberately single-line SCSP for the bench's tests: a small FastAPI OCPI SCSP that splits
the site's limit in kW equally across the cars plugged in, blind to phases and protections.

It registers as the Receiver of the CPO's credentials handshake, takes Session and Location
pushes, and after every session start or stop PUTs each active session a `W` profile of
`site_limit_kw / n`, from a background thread (as an SCSP's dispatcher would).
"""

from __future__ import annotations

import base64
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def _envelope(data: Any = None) -> JSONResponse:
    body: dict[str, Any] = {
        "status_code": 1000,
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if data is not None:
        body["data"] = data
    return JSONResponse(body)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


class SingleLineScsp:
    def __init__(self, site_limit_kw: float) -> None:
        self.site_limit_kw = site_limit_kw
        self.token_a = secrets.token_urlsafe(16)
        self.token_c = secrets.token_urlsafe(16)
        self.url = ""
        self.token_b: str | None = None
        self.profiles_url: str | None = None
        self.active: set[str] = set()
        self.puts = 0
        self._lock = threading.Lock()
        self.app = self._make_app()

    def _replan(self) -> None:
        with self._lock:
            active = sorted(self.active)
        if not active or self.profiles_url is None or self.token_b is None:
            return
        limit_w = round(self.site_limit_kw * 1000.0 / len(active), 1)
        with httpx.Client(timeout=5.0) as http:
            for session_id in active:
                body = {
                    "charging_profile": {
                        "charging_rate_unit": "W",
                        "charging_profile_period": [{"start_period": 0, "limit": limit_w}],
                    },
                    "response_url": f"{self.url}/ocpi/2.2.1/cb/{secrets.token_hex(6)}",
                }
                http.put(self.profiles_url + session_id, json=body, headers=_auth(self.token_b))
                self.puts += 1

    def _make_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/ocpi/versions")
        def versions() -> JSONResponse:
            return _envelope([{"version": "2.2.1", "url": f"{self.url}/ocpi/2.2.1"}])

        @app.get("/ocpi/2.2.1")
        def details() -> JSONResponse:
            base = f"{self.url}/ocpi/2.2.1"
            return _envelope(
                {
                    "version": "2.2.1",
                    "endpoints": [
                        {"identifier": "credentials", "role": "SENDER", "url": f"{base}/credentials"},
                        {"identifier": "sessions", "role": "RECEIVER", "url": f"{base}/sessions"},
                        {"identifier": "locations", "role": "RECEIVER", "url": f"{base}/locations"},
                        {"identifier": "chargingprofiles", "role": "SENDER", "url": f"{base}/profiles"},
                    ],
                }
            )

        @app.post("/ocpi/2.2.1/credentials")
        async def credentials(request: Request) -> JSONResponse:
            theirs = await request.json()
            self.token_b = str(theirs["token"])
            with httpx.Client(timeout=5.0) as http:
                listed = http.get(theirs["url"], headers=_auth(self.token_b)).json()["data"]
                found = http.get(listed[0]["url"], headers=_auth(self.token_b)).json()["data"]["endpoints"]
            self.profiles_url = next(e["url"] for e in found if e["identifier"] == "chargingprofiles")
            role = {
                "role": "SCSP",
                "business_details": {"name": "single line"},
                "party_id": "ONE",
                "country_code": "FR",
            }
            return _envelope({"token": self.token_c, "url": f"{self.url}/ocpi/versions", "roles": [role]})

        @app.api_route("/ocpi/2.2.1/sessions/{cc}/{pid}/{session_id}", methods=["PUT", "PATCH"])
        async def session(request: Request, session_id: str) -> JSONResponse:
            body = await request.json()
            status = body.get("status")
            with self._lock:
                if status == "ACTIVE":
                    self.active.add(session_id)
                elif status in ("COMPLETED", "INVALID"):
                    self.active.discard(session_id)
            if status in ("ACTIVE", "COMPLETED", "INVALID"):
                threading.Thread(target=self._replan, daemon=True).start()
            return _envelope()

        @app.put("/ocpi/2.2.1/sessions/{cc}/{pid}/{session_id}/charging_preferences")
        def preferences() -> JSONResponse:
            return _envelope("ACCEPTED")

        @app.api_route("/ocpi/2.2.1/locations/{rest:path}", methods=["PUT", "PATCH"])
        def locations() -> JSONResponse:
            return _envelope()

        @app.post("/ocpi/2.2.1/cb/{request_id}")
        def result() -> JSONResponse:
            return _envelope()

        return app
