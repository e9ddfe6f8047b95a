"""The credentials handshake both ways, between two real processes on 127.0.0.1.

The EMS runs as `ems serve`; the CPO is `tests.support.mini_cpo`, a strict little CPO back-end.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.ocpi_objects import location, session
from tests.support.servers import REPO, ProcessServer, free_port

pytestmark = pytest.mark.e2e


@dataclass
class Deployment:
    ems_url: str
    cpo_url: str
    env: dict[str, str]
    ems: ProcessServer
    tmp: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ems.cli", *args],
            env=self.ems.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    def cpo(self, path: str, body: Any = None) -> Any:
        reply = httpx.post(self.cpo_url + path, json=body or {}, timeout=30)
        reply.raise_for_status()
        return reply.json()

    def cpo_state(self) -> dict[str, Any]:
        return httpx.get(self.cpo_url + "/control/state", timeout=10).json()  # type: ignore[no-any-return]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    ems_port, cpo_port = free_port(), free_port()
    env = {
        "EMS_DATABASE_URL": f"sqlite:///{tmp_path / 'ems.db'}",
        "EMS_PUBLIC_URL": f"http://127.0.0.1:{ems_port}",
        "EMS_PULL_INTERVAL_S": "86400",
    }
    ems = ProcessServer(
        ["-m", "ems.cli", "serve", "--port", str(ems_port)], env, f"http://127.0.0.1:{ems_port}/healthz"
    )
    cpo = ProcessServer(
        ["-m", "tests.support.mini_cpo", "--port", str(cpo_port), "--token-a", "cpo-token-a"],
        {},
        f"http://127.0.0.1:{cpo_port}/healthz",
    )
    ems.start(tmp_path / "ems.log")
    cpo.start(tmp_path / "cpo.log")
    try:
        yield Deployment(
            f"http://127.0.0.1:{ems_port}", f"http://127.0.0.1:{cpo_port}", ems.env, ems, tmp_path
        )
    finally:
        cpo.stop()
        ems.stop()


def b64(token: str) -> dict[str, str]:
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def test_cpo_registers_with_the_ems(deployment: Deployment) -> None:
    invite = deployment.cli("partner", "invite", "--country-code", "NL", "--party-id", "CPO", "--role", "CPO")
    assert invite.returncode == 0, invite.stderr
    invitation = json.loads(invite.stdout)
    assert invitation["versions_url"] == f"{deployment.ems_url}/ocpi/versions"
    token_a = invitation["token_a"]

    outcome = deployment.cpo(
        "/control/register", {"versions_url": invitation["versions_url"], "token_a": token_a}
    )
    assert outcome["envelope"]["status_code"] == 1000, outcome
    ems_credentials = outcome["envelope"]["data"]
    assert ems_credentials["roles"][0]["role"] == "SCSP"
    token_c = ems_credentials["token"]
    state = deployment.cpo_state()
    # During the POST the EMS fetched the CPO's versions with token B, Base64-encoded.
    callbacks = [r for r in state["requests"] if r["path"] in ("/ocpi/versions", "/ocpi/2.2.1")]
    assert callbacks and all(
        r["headers"]["authorization"] == b64(state["incoming"])["Authorization"] for r in callbacks
    )

    # Token A stops working; token C reaches the functional modules.
    assert httpx.get(deployment.ems_url + "/ocpi/versions", headers=b64(token_a)).status_code == 401
    pushed = deployment.cpo(
        "/control/push", {"module": "sessions", "method": "PUT", "path": "NL/CPO/s1", "body": session()}
    )
    assert pushed["http_status"] == 201 and pushed["envelope"]["status_code"] == 1000
    assert pushed["headers"]["ocpi-to-party-id"] == "CPO"

    # A second POST is 405; GET returns our credentials with the caller's token.
    reply = httpx.post(
        deployment.ems_url + "/ocpi/2.2.1/credentials", json=ems_credentials, headers=b64(token_c)
    )
    assert reply.status_code == 405
    assert (
        httpx.get(deployment.ems_url + "/ocpi/2.2.1/credentials", headers=b64(token_c)).json()["data"][
            "token"
        ]
        == token_c
    )

    # PUT rotates: the EMS re-fetches the CPO's endpoints and the old token stops working.
    fetched_before = len([r for r in deployment.cpo_state()["requests"] if r["path"] == "/ocpi/2.2.1"])
    rotated = deployment.cpo("/control/rotate")
    assert rotated["envelope"]["status_code"] == 1000, rotated
    new_token = rotated["envelope"]["data"]["token"]
    assert new_token != token_c
    state = deployment.cpo_state()
    assert len([r for r in state["requests"] if r["path"] == "/ocpi/2.2.1"]) == fetched_before + 1
    assert (
        httpx.get(deployment.ems_url + "/ocpi/2.2.1/sessions/NL/CPO/s1", headers=b64(token_c)).status_code
        == 401
    )
    assert (
        httpx.get(deployment.ems_url + "/ocpi/2.2.1/sessions/NL/CPO/s1", headers=b64(new_token)).status_code
        == 200
    )

    # DELETE unregisters: every token is void, and PUT/DELETE now answer 405 / 401.
    gone = deployment.cpo("/control/unregister")
    assert gone["http_status"] == 200 and "data" not in gone["envelope"]
    assert httpx.get(deployment.ems_url + "/ocpi/versions", headers=b64(new_token)).status_code == 401

    listed = [json.loads(line) for line in deployment.cli("partner", "list").stdout.splitlines()]
    assert listed[0]["status"] == "UNREGISTERED"


def test_put_and_delete_before_registration_are_405(deployment: Deployment) -> None:
    token_a = json.loads(
        deployment.cli("partner", "invite", "--country-code", "NL", "--party-id", "CPO").stdout
    )["token_a"]
    url = deployment.ems_url + "/ocpi/2.2.1/credentials"
    body = {
        "token": "x",
        "url": "http://127.0.0.1:1/ocpi/versions",
        "roles": [
            {"role": "CPO", "business_details": {"name": "n"}, "country_code": "NL", "party_id": "CPO"}
        ],
    }
    assert httpx.put(url, json=body, headers=b64(token_a)).status_code == 405
    assert httpx.delete(url, headers=b64(token_a)).status_code == 405
    # Token A cannot reach the functional modules.
    assert (
        httpx.put(
            deployment.ems_url + "/ocpi/2.2.1/sessions/NL/CPO/s1", json=session(), headers=b64(token_a)
        ).status_code
        == 401
    )


def test_ems_registers_with_the_cpo_then_pulls_and_sends_profiles(deployment: Deployment) -> None:
    sessions = [session(f"s{i}", last_updated=f"2026-06-01T08:0{i}:00Z") for i in range(5)]
    deployment.cpo("/control/set", {"sessions": sessions, "locations": [location("LOC1"), location("LOC2")]})
    registered = deployment.cli(
        "partner",
        "register",
        "--versions-url",
        f"{deployment.cpo_url}/ocpi/versions",
        "--token-a",
        "cpo-token-a",
    )
    assert registered.returncode == 0, registered.stderr
    partner = json.loads(registered.stdout)
    assert (partner["country_code"], partner["party_id"], partner["status"]) == ("NL", "CPO", "REGISTERED")
    state = deployment.cpo_state()
    assert state["outgoing"] and state["incoming"] and state["token_a"] is None

    # The CPO's token A no longer works on its side for us; our C does (the pull below uses it).
    synced = deployment.cli("partner", "sync")
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert (report["sessions"], report["locations"], report["errors"]) == (5, 2, [])
    pulls = [r for r in deployment.cpo_state()["requests"] if r["path"] == "/ocpi/2.2.1/sessions"]
    assert len(pulls) == 3  # 5 sessions, 2 per page: the Link header was followed
    assert all(
        r["headers"]["ocpi-from-party-id"] == "SCS" and r["headers"]["ocpi-to-party-id"] == "CPO"
        for r in pulls
    )

    # The CPO reads the pulled session back through our receiver with the token we issued it.
    got = deployment.cpo("/control/push", {"module": "sessions", "method": "GET", "path": "NL/CPO/s3"})
    assert got["envelope"]["data"]["id"] == "s3"

    # ChargingProfiles: PUT, GET and DELETE to the CPO; the asynchronous results come back to us.
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.profile_calls", "s3"],
        env=deployment.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answers, rows = json.loads(done.stdout)
    assert answers == ["ACCEPTED", "ACCEPTED", "ACCEPTED"]
    assert rows == [
        ["set", "ACCEPTED", "ACCEPTED"],
        ["get", "ACCEPTED", "ACCEPTED"],
        ["clear", "ACCEPTED", "ACCEPTED"],
    ]
    calls = deployment.cpo_state()["profile_calls"]
    assert [c["method"] for c in calls] == ["PUT", "GET", "DELETE"]
    assert calls[0]["body"]["charging_profile"]["charging_profile_period"][1] == {
        "start_period": 900,
        "limit": 8.5,
    }
    response_urls = [
        calls[0]["body"]["response_url"],
        calls[1]["query"]["response_url"],
        calls[2]["query"]["response_url"],
    ]
    assert len(set(response_urls)) == 3 and all(u.startswith(deployment.ems_url) for u in response_urls)
    assert all(
        c["callback_reply"]["status_code"] == 1000 and "data" not in c["callback_reply"] for c in calls
    )


def test_nothing_acknowledged_is_lost_when_the_ems_is_killed(deployment: Deployment) -> None:
    token_a = json.loads(
        deployment.cli("partner", "invite", "--country-code", "NL", "--party-id", "CPO").stdout
    )["token_a"]
    deployment.cpo(
        "/control/register", {"versions_url": f"{deployment.ems_url}/ocpi/versions", "token_a": token_a}
    )
    acknowledged = []
    for i in range(30):
        pushed = deployment.cpo(
            "/control/push",
            {
                "module": "sessions",
                "method": "PUT",
                "path": f"NL/CPO/k{i}",
                "body": session(f"k{i}", kwh=float(i)),
            },
        )
        if pushed["envelope"]["status_code"] == 1000:
            acknowledged.append(i)
    deployment.ems.kill()
    deployment.ems.start(deployment.tmp / "ems-restarted.log")
    for i in acknowledged:
        got = deployment.cpo("/control/push", {"module": "sessions", "method": "GET", "path": f"NL/CPO/k{i}"})
        assert got["envelope"]["data"]["kwh"] == float(i)
    assert len(acknowledged) == 30
    # The partner's registration survived too: the same token still works after the restart.
    time.sleep(0)
