"""OCPI Session PATCH ingestion over loopback with SQLite, against a trivial FastAPI endpoint.

Both servers run as their own uvicorn process, fed by the same concurrent HTTP clients in this
process, so the ratio between them is the figure that travels between machines. Bounded in
count and time.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.loadgen import build_request, run_load
from ems.core.config import Settings
from ems.core.context import EmsContext
from ems.ocpi.partners import PartnerStatus
from ems.ocpi.tokens import new_token, token_digest
from ems.store.db import transaction
from ems.store.models import Partner

REPO = Path(__file__).resolve().parents[1]
QUICK = os.environ.get("BENCH_QUICK") == "1"
N_SESSIONS = 50
N_PATCHES = 1000 if QUICK else 3000
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "4"))
TIME_LIMIT_S = 60.0


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(args: list[str], env: dict[str, str], port: int) -> Any:
    import subprocess

    process = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **env},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server on port {port} did not start")


def _session(i: int) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "CPO",
        "id": f"s{i}",
        "start_date_time": "2026-06-01T08:00:00Z",
        "kwh": 0.0,
        "cdr_token": {
            "uid": "T",
            "type": "RFID",
            "contract_id": "C",
            "country_code": "NL",
            "party_id": "ACM",
        },
        "auth_method": "WHITELIST",
        "location_id": "LOC1",
        "evse_uid": f"E{i}",
        "connector_id": "1",
        "currency": "EUR",
        "status": "ACTIVE",
        "last_updated": "2026-06-01T08:00:00Z",
    }


def _patch(i: int) -> dict[str, Any]:
    minute = i // N_SESSIONS
    stamp = f"2026-06-01T{8 + minute // 60:02d}:{minute % 60:02d}:00Z"
    return {
        "kwh": round(0.1 * minute, 3),
        "charging_periods": [
            {
                "start_date_time": stamp,
                "dimensions": [{"type": "ENERGY", "volume": 0.1}, {"type": "CURRENT", "volume": 16.0}],
            }
        ],
        "last_updated": stamp,
    }


def _drive(port: int, headers: dict[str, str]) -> tuple[list[float], float, int]:
    """N_PATCHES PATCHes over CONCURRENCY connections: latencies (s), wall time (s), failures."""
    requests = [
        build_request(
            "PATCH",
            f"/ocpi/2.2.1/sessions/NL/CPO/s{i % N_SESSIONS}",
            f"127.0.0.1:{port}",
            headers,
            json.dumps(_patch(i)).encode(),
        )
        for i in range(N_PATCHES)
    ]
    result = run_load(
        port, requests, CONCURRENCY, TIME_LIMIT_S, ok=lambda s, b: s == 200 and b'"status_code":1000' in b
    )
    return result.latencies_s, result.wall_s, result.failures


def _figures(name: str, latencies: list[float], wall_s: float, failures: int) -> dict[str, float]:
    ordered = sorted(latencies)
    result = {
        "requests": float(len(ordered)),
        "throughput_per_s": len(ordered) / wall_s,
        "p50_ms": 1000 * statistics.median(ordered),
        "p99_ms": 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "failures": float(failures),
    }
    print(
        f"  {name:<28} {result['throughput_per_s']:8.0f} req/s   p50 {result['p50_ms']:6.1f} ms"
        f"   p99 {result['p99_ms']:6.1f} ms   ({len(ordered)} requests, {failures} failed)"
    )
    return result


def main() -> dict[str, dict[str, float]]:
    print(f"OCPI session PATCH ingestion, loopback, {CONCURRENCY} concurrent clients, {N_PATCHES} PATCHes")
    results: dict[str, dict[str, float]] = {}

    port = _free_port()
    process = _start(
        ["-m", "uvicorn", "benchmarks.trivial_app:app", "--port", str(port), "--log-level", "warning"],
        {},
        port,
    )
    try:
        results["trivial"] = _figures("trivial FastAPI endpoint", *_drive(port, {}))
    finally:
        process.terminate()
        process.wait(10)

    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        database_url = f"sqlite:///{tmp}/bench.db"
        ctx = EmsContext.create(Settings(database_url=database_url))
        token = new_token()
        with transaction(ctx.db) as db:
            db.add(
                Partner(
                    country_code="NL",
                    party_id="CPO",
                    role="CPO",
                    status=PartnerStatus.REGISTERED,
                    roles=[],
                    endpoints=[],
                    token_incoming=token,
                    token_incoming_sha256=token_digest(token),
                )
            )
        ctx.close()
        env = {"EMS_DATABASE_URL": database_url, "EMS_PUBLIC_URL": f"http://127.0.0.1:{port}"}
        process = _start(["-m", "ems.cli", "serve", "--port", str(port)], env, port)
        try:
            headers = {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                for i in range(N_SESSIONS):
                    client.put(f"/ocpi/2.2.1/sessions/NL/CPO/s{i}", json=_session(i)).raise_for_status()
            results["ems"] = _figures("EMS session PATCH (SQLite)", *_drive(port, headers))
        finally:
            process.terminate()
            process.wait(10)

    ratio = results["ems"]["throughput_per_s"] / results["trivial"]["throughput_per_s"]
    print(f"  ratio EMS / trivial throughput: {ratio:.2f}   (targets: >= 300 PATCH/s, p99 < 50 ms)")
    return results


if __name__ == "__main__":
    main()
