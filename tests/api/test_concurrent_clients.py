"""Many CPO connections at once: 200 keep-alive connections, each with its numbered PATCHes, lose
none; and a client that sends headers, then silence, holds up nobody else."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import httpx
from sqlalchemy import func, select

from ems.store.models import ChargingPeriod, ChargingSession
from tests.conftest import RunningEms, add_registered_partner, auth
from tests.support.ocpi_objects import charging_period, session

CONNECTIONS = 200
PATCHES_PER_CONNECTION = 5
BOUND_S = 240.0


async def _one_connection(url: str, headers: dict[str, str], number: int) -> list[int]:
    """PUT a session, then PATCH it with periods numbered 1..N, on one kept-alive connection."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    codes: list[int] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=60) as client:
        path = f"/ocpi/2.2.1/sessions/NL/CPO/load-{number}"
        codes.append((await client.put(path, json=session(f"load-{number}"))).json()["status_code"])
        for k in range(1, PATCHES_PER_CONNECTION + 1):
            stamp = f"2026-06-01T08:{10 + k:02d}:00Z"
            body = {"kwh": float(k), "last_updated": stamp, "charging_periods": [charging_period(stamp, 1.0)]}
            codes.append((await client.patch(path, json=body)).json()["status_code"])
    return codes


def test_200_keep_alive_connections_lose_no_patch(ems: RunningEms) -> None:
    headers = auth(add_registered_partner(ems.ctx))

    async def everyone() -> list[list[int]]:
        tasks = [_one_connection(ems.url, headers, n) for n in range(CONNECTIONS)]
        return await asyncio.wait_for(asyncio.gather(*tasks), timeout=BOUND_S)

    answers = asyncio.run(everyone())
    assert all(code == 1000 for codes in answers for code in codes)
    with ems.ctx.db() as db:
        assert db.scalar(select(func.count()).select_from(ChargingSession)) == CONNECTIONS
        assert (
            db.scalar(select(func.count()).select_from(ChargingPeriod))
            == CONNECTIONS * PATCHES_PER_CONNECTION
        )
        assert set(db.scalars(select(ChargingSession.kwh))) == {float(PATCHES_PER_CONNECTION)}


def test_a_silent_client_does_not_stall_the_others(ems: RunningEms) -> None:
    headers = auth(add_registered_partner(ems.ctx))
    address = urlsplit(ems.url)
    silent: list[socket.socket] = []
    try:
        for n in range(20):  # headers announcing a body that never comes
            sock = socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=5)
            sock.sendall(
                f"PUT /ocpi/2.2.1/sessions/NL/CPO/slow-{n} HTTP/1.1\r\nHost: x\r\n"
                f"Authorization: {headers['Authorization']}\r\nContent-Type: application/json\r\n"
                "Content-Length: 1000\r\n\r\n{".encode()
            )
            silent.append(sock)
        reply = httpx.put(
            f"{ems.url}/ocpi/2.2.1/sessions/NL/CPO/s1", json=session(), headers=headers, timeout=10
        )
        assert reply.json()["status_code"] == 1000
    finally:
        for sock in silent:
            sock.close()
    with ems.ctx.db() as db:
        ids = set(db.scalars(select(ChargingSession.session_id)))
    assert ids == {"s1"}  # nothing of the half-sent requests was stored
