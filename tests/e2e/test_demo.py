"""`ems demo` as a user runs it: it comes up, plans and sends profiles, and Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.servers import REPO, free_port

pytestmark = pytest.mark.e2e


def test_demo_runs_and_stops_cleanly(tmp_path: Path) -> None:
    port, cpo_port, ocpp_port = free_port(), free_port(), free_port()
    database = tmp_path / "demo.db"
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ems.cli",
            "demo",
            "--port",
            str(port),
            "--cpo-port",
            str(cpo_port),
            "--ocpp-port",
            str(ocpp_port),
            "--speed",
            "600",
            "--database",
            str(database),
        ],
        cwd=REPO,
        env={**os.environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert demo.stdout is not None
        lines = [demo.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("EMS dashboard:"), lines
        dashboard = lines[0].split(":", 1)[1].strip()
        assert lines[1].startswith("Admin login:")
        user, password = lines[1].split(":", 1)[1].strip().split(" / ")

        deadline = time.monotonic() + 60
        accepted = 0
        while time.monotonic() < deadline and accepted == 0:
            time.sleep(1)
            with sqlite3.connect(database) as db:
                accepted = db.execute(
                    "select count(*) from profile_request where kind = 'set' and result = 'ACCEPTED'"
                ).fetchone()[0]
        assert accepted > 0, "no profile was accepted by the simulated charge points"

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", follow_redirects=True) as browser:
            login = browser.get("/login")
            token = login.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            reply = browser.post("/login", data={"username": user, "password": password, "csrf_token": token})
            assert reply.status_code == 200
            page = browser.get(dashboard.removeprefix(f"http://127.0.0.1:{port}"))
            assert page.status_code == 200 and "office-pv" in page.text
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(timeout=30)
    assert code == 0
    time.sleep(1)
    for probe in (f"http://127.0.0.1:{port}/healthz", f"http://127.0.0.1:{cpo_port}/healthz"):
        with pytest.raises(httpx.HTTPError):
            httpx.get(probe, timeout=1)
