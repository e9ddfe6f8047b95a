"""`ems serve` started as a user would, without `EMS_PUBLIC_URL`: every URL it hands out reaches it.

A CPO registers from the versions URL `ems partner invite` prints, then follows the version
details to each module: all of them must name the host and port the server was started with.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import auth
from tests.support.servers import REPO, ProcessServer, free_port

pytestmark = pytest.mark.e2e
INVITE = ["partner", "invite", "--country-code", "NL", "--party-id", "CPO"]


def test_urls_follow_the_port_served_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMS_PUBLIC_URL", raising=False)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"EMS_DATABASE_URL": f"sqlite:///{tmp_path / 'ems.db'}"}
    server = ProcessServer(
        ["-m", "ems.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env,
        f"{base}/healthz",
    )
    server.start(tmp_path / "ems.log")
    try:
        invited = subprocess.run(
            [sys.executable, "-m", "ems.cli", *INVITE],
            env={**os.environ, **env},
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        invitation = json.loads(invited.stdout)
        assert invitation["versions_url"] == f"{base}/ocpi/versions"

        headers = auth(invitation["token_a"])
        versions = httpx.get(invitation["versions_url"], headers=headers).json()
        assert versions["status_code"] == 1000
        (v221,) = [v for v in versions["data"] if v["version"] == "2.2.1"]
        assert v221["url"].startswith(f"{base}/")

        details = httpx.get(v221["url"], headers=headers).json()
        assert details["status_code"] == 1000
        urls = [endpoint["url"] for endpoint in details["data"]["endpoints"]]
        assert urls and all(url.startswith(f"{base}/ocpi/") for url in urls), urls
        # Every module URL answers on this server (a wrong port would refuse the connection).
        for url in urls:
            assert httpx.get(url, headers=headers).status_code < 500, url
    finally:
        server.stop()
