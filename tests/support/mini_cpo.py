"""A small, strict OCPI 2.2.1 CPO back-end written for the tests, run as its own process.

It speaks to the EMS over real HTTP exactly as a CPO would: registers either way, pushes
sessions, serves its Sessions/Locations SENDER lists page by page (following `Link`), and its
chargingprofiles RECEIVER answers then calls the `response_url` back. It is strict where the
EMS must be correct (Base64 tokens, routing headers on functional modules) and records every
request it receives so tests can look. `/control/*` lets a test drive it.

Run: python -m tests.support.mini_cpo --port 9001 --token-a SECRET
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import secrets
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

COUNTRY_CODE = "NL"
PARTY_ID = "CPO"


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ok(
    data: Any = None,
    status: int = 200,
    code: int = 1000,
    message: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"status_code": code, "timestamp": _now()}
    if data is not None:
        body["data"] = data
    if message:
        body["status_message"] = message
    return JSONResponse(body, status_code=status, headers=headers)


def make_app(public_url: str, token_a: str) -> FastAPI:
    app = FastAPI()
    state: dict[str, Any] = {
        "token_a": token_a,
        "incoming": None,  # the token the EMS presents to us (issued by us)
        "outgoing": None,  # the token we present to the EMS
        "ems_endpoints": [],
        "sessions": [],
        "locations": [],
        "profile_calls": [],
        "requests": [],
        "profile_answer": "ACCEPTED",
        "page_size": 2,
    }
    base = f"{public_url}/ocpi/2.2.1"

    def endpoints() -> list[dict[str, str]]:
        return [
            {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials"},
            {"identifier": "sessions", "role": "SENDER", "url": f"{base}/sessions"},
            {"identifier": "locations", "role": "SENDER", "url": f"{base}/locations"},
            {"identifier": "chargingprofiles", "role": "RECEIVER", "url": f"{base}/chargingprofiles"},
        ]

    def credentials(token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": f"{public_url}/ocpi/versions",
            "roles": [
                {
                    "role": "CPO",
                    "business_details": {"name": "Mini CPO"},
                    "country_code": COUNTRY_CODE,
                    "party_id": PARTY_ID,
                }
            ],
        }

    def token_of(request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.startswith("Token "):
            return None
        try:
            return base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None

    def allowed(request: Request, *, token_a_ok: bool) -> bool:
        token = token_of(request)
        if token is None:
            return False
        if token_a_ok and state["token_a"] and token == state["token_a"]:
            return True
        return bool(state["incoming"]) and token == state["incoming"]

    def ems_headers(routed: bool = True) -> dict[str, str]:
        headers = {
            "Authorization": "Token " + base64.b64encode(state["outgoing"].encode()).decode(),
            "X-Request-ID": secrets.token_hex(8),
            "X-Correlation-ID": secrets.token_hex(8),
        }
        if routed:
            headers |= {
                "OCPI-from-country-code": COUNTRY_CODE,
                "OCPI-from-party-id": PARTY_ID,
                "OCPI-to-country-code": state.get("ems_country_code", ""),
                "OCPI-to-party-id": state.get("ems_party_id", ""),
            }
        return headers

    async def fetch_ems_endpoints(client: httpx.AsyncClient, versions_url: str, token: str) -> None:
        auth = {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}
        versions = (await client.get(versions_url, headers=auth)).json()["data"]
        details_url = next(v["url"] for v in versions if v["version"] == "2.2.1")
        state["ems_endpoints"] = (await client.get(details_url, headers=auth)).json()["data"]["endpoints"]

    def ems_url(identifier: str) -> str:
        return str(next(e["url"] for e in state["ems_endpoints"] if e["identifier"] == identifier))

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        if not request.url.path.startswith("/control") and request.url.path != "/healthz":
            state["requests"].append(
                {"method": request.method, "path": request.url.path, "headers": dict(request.headers)}
            )
        return await call_next(request)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ocpi/versions")
    async def versions(request: Request) -> JSONResponse:
        if not allowed(request, token_a_ok=True):
            return ok(status=401, code=2000, message="unauthorized")
        return ok([{"version": "2.2.1", "url": base}])

    @app.get("/ocpi/2.2.1")
    async def details(request: Request) -> JSONResponse:
        if not allowed(request, token_a_ok=True):
            return ok(status=401, code=2000, message="unauthorized")
        return ok({"version": "2.2.1", "endpoints": endpoints()})

    @app.post("/ocpi/2.2.1/credentials")
    async def post_credentials(request: Request) -> JSONResponse:
        if not allowed(request, token_a_ok=True):
            return ok(status=401, code=2000, message="unauthorized")
        if state["incoming"]:
            return ok(status=405, code=2000, message="already registered")
        body = await request.json()
        async with httpx.AsyncClient() as client:
            await fetch_ems_endpoints(client, body["url"], body["token"])
        state["outgoing"] = body["token"]
        state["ems_country_code"] = body["roles"][0]["country_code"]
        state["ems_party_id"] = body["roles"][0]["party_id"]
        state["incoming"] = secrets.token_urlsafe(24)
        state["token_a"] = None
        return ok(credentials(state["incoming"]))

    @app.get("/ocpi/2.2.1/sessions")
    async def list_sessions(
        request: Request, date_from: str, offset: int = 0, limit: int = 100
    ) -> JSONResponse:
        return paged(request, "sessions", date_from, offset, limit)

    @app.get("/ocpi/2.2.1/locations")
    async def list_locations(
        request: Request, date_from: str | None = None, offset: int = 0, limit: int = 100
    ) -> JSONResponse:
        return paged(request, "locations", date_from, offset, limit)

    def paged(request: Request, kind: str, date_from: str | None, offset: int, limit: int) -> JSONResponse:
        if not allowed(request, token_a_ok=False):
            return ok(status=401, code=2000, message="unauthorized")
        items = [
            i
            for i in state[kind]
            if date_from is None or i["last_updated"] >= date_from.replace("+00:00", "Z")
        ]
        size = min(limit, state["page_size"])
        page = items[offset : offset + size]
        headers = {"X-Total-Count": str(len(items)), "X-Limit": str(state["page_size"])}
        if offset + size < len(items):
            query = f"offset={offset + size}&limit={size}" + (f"&date_from={date_from}" if date_from else "")
            headers["Link"] = f'<{base}/{kind}?{query}>; rel="next"'
        return ok(page, headers=headers)

    async def call_back(call: dict[str, Any], url: str, body: dict[str, Any]) -> None:
        await asyncio.sleep(0.05)
        async with httpx.AsyncClient() as client:
            reply = await client.post(url, json=body, headers=ems_headers())
            call["callback_status"] = reply.status_code
            call["callback_reply"] = reply.json()

    @app.api_route("/ocpi/2.2.1/chargingprofiles/{session_id}", methods=["GET", "PUT", "DELETE"])
    async def chargingprofiles(request: Request, session_id: str) -> JSONResponse:
        if not allowed(request, token_a_ok=False):
            return ok(status=401, code=2000, message="unauthorized")
        body = await request.json() if request.method == "PUT" else None
        response_url = body["response_url"] if body else request.query_params["response_url"]
        call = {
            "method": request.method,
            "session_id": session_id,
            "body": body,
            "query": dict(request.query_params),
        }
        state["profile_calls"].append(call)
        answer = state["profile_answer"]
        if answer == "ACCEPTED":
            if request.method == "GET":
                result: dict[str, Any] = {
                    "result": "ACCEPTED",
                    "profile": {
                        "start_date_time": _now(),
                        "charging_profile": {
                            "charging_rate_unit": "A",
                            "charging_profile_period": [{"start_period": 0, "limit": 16.0}],
                        },
                    },
                }
            else:
                result = {"result": "ACCEPTED"}
            asyncio.get_running_loop().create_task(call_back(call, response_url, result))
        return ok({"result": answer, "timeout": 30})

    # ---- control API for the tests ----------------------------------------------------------

    @app.get("/control/state")
    async def control_state() -> dict[str, Any]:
        return state

    @app.post("/control/set")
    async def control_set(request: Request) -> dict[str, Any]:
        state.update(await request.json())
        return {"ok": True}

    @app.post("/control/register")
    async def control_register(request: Request) -> dict[str, Any]:
        """We (the CPO) initiate: register with the EMS using the token A it printed."""
        args = await request.json()
        async with httpx.AsyncClient() as client:
            await fetch_ems_endpoints(client, args["versions_url"], args["token_a"])
            state["incoming"] = secrets.token_urlsafe(24)  # our token B, stored before the POST
            auth = {"Authorization": "Token " + base64.b64encode(args["token_a"].encode()).decode()}
            reply = await client.post(
                ems_url("credentials"), json=credentials(state["incoming"]), headers=auth
            )
        envelope = reply.json()
        if envelope.get("status_code") == 1000:
            state["outgoing"] = envelope["data"]["token"]
            state["ems_country_code"] = envelope["data"]["roles"][0]["country_code"]
            state["ems_party_id"] = envelope["data"]["roles"][0]["party_id"]
        return {"http_status": reply.status_code, "envelope": envelope}

    @app.post("/control/rotate")
    async def control_rotate() -> dict[str, Any]:
        """Credentials PUT: a new token for the EMS to use with us; the EMS rotates its own."""
        new_incoming = secrets.token_urlsafe(24)
        old_incoming = state["incoming"]
        state["incoming"] = new_incoming
        async with httpx.AsyncClient() as client:
            reply = await client.put(
                ems_url("credentials"), json=credentials(new_incoming), headers=ems_headers(False)
            )
        envelope = reply.json()
        if envelope.get("status_code") == 1000:
            state["previous_outgoing"] = state["outgoing"]
            state["outgoing"] = envelope["data"]["token"]
        else:
            state["incoming"] = old_incoming
        return {"http_status": reply.status_code, "envelope": envelope}

    @app.post("/control/unregister")
    async def control_unregister() -> dict[str, Any]:
        async with httpx.AsyncClient() as client:
            reply = await client.delete(ems_url("credentials"), headers=ems_headers(False))
        return {"http_status": reply.status_code, "envelope": reply.json()}

    @app.post("/control/push")
    async def control_push(request: Request) -> dict[str, Any]:
        """Push to the EMS: {"module": "sessions", "method": "PUT", "path": "NL/CPO/s1", "body": {...}}."""
        args = await request.json()
        url = ems_url(args["module"]).rstrip("/") + "/" + args["path"]
        headers = ems_headers() if args.get("token") is None else {"Authorization": args["token"]}
        async with httpx.AsyncClient() as client:
            reply = await client.request(args["method"], url, json=args.get("body"), headers=headers)
        return {"http_status": reply.status_code, "envelope": reply.json(), "headers": dict(reply.headers)}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-a", required=True)
    args = parser.parse_args()
    public_url = f"http://127.0.0.1:{args.port}"
    uvicorn.run(make_app(public_url, args.token_a), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
