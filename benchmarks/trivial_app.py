"""The baseline of the ingestion benchmark: a FastAPI endpoint that does nothing."""

from __future__ import annotations

from typing import Any

from fastapi import Body, FastAPI

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.patch("/ocpi/2.2.1/sessions/{country_code}/{party_id}/{session_id}")
def patch(country_code: str, party_id: str, session_id: str, body: dict[str, Any] = Body()) -> dict[str, int]:
    return {"status_code": 1000}  # the EMS answers the same envelope code
