"""OCPI transport rules over real HTTP: tokens, headers, envelope."""

from __future__ import annotations

import httpx

from tests.conftest import RunningEms, add_registered_partner, auth
from tests.support.ocpi_objects import session

URL = "/ocpi/2.2.1/sessions/NL/CPO/s1"


def test_missing_or_wrong_token_is_401_with_envelope(ems: RunningEms) -> None:
    add_registered_partner(ems.ctx)
    for headers in ({}, {"Authorization": "Token nope"}, {"Authorization": "Bearer abc"}, auth("wrong")):
        reply = httpx.put(ems.url + URL, json=session(), headers=headers)
        assert reply.status_code == 401, headers
        envelope = reply.json()
        assert envelope["status_code"] == 2000 and envelope["timestamp"].endswith("Z")
    for path in ("/ocpi/versions", "/ocpi/2.2.1", "/ocpi/2.2.1/credentials"):
        assert httpx.get(ems.url + path).status_code == 401


def test_token_is_accepted_base64_and_raw(ems: RunningEms) -> None:
    token = add_registered_partner(ems.ctx)
    assert httpx.put(ems.url + URL, json=session(), headers=auth(token)).json()["status_code"] == 1000
    raw = {"Authorization": f"Token {token}"}
    assert httpx.get(ems.url + URL, headers=raw).json()["data"]["id"] == "s1"


def test_request_and_correlation_ids_are_echoed_and_routing_headers_set(cpo_client: httpx.Client) -> None:
    headers = {
        "X-Request-ID": "req-1",
        "X-Correlation-ID": "corr-1",
        "OCPI-from-country-code": "NL",
        "OCPI-from-party-id": "CPO",
        "OCPI-to-country-code": "FR",
        "OCPI-to-party-id": "SCS",
    }
    reply = cpo_client.put(URL, json=session(), headers=headers)
    assert reply.headers["X-Request-ID"] == "req-1"
    assert reply.headers["X-Correlation-ID"] == "corr-1"
    assert reply.headers["OCPI-from-country-code"] == "FR"
    assert reply.headers["OCPI-from-party-id"] == "SCS"
    assert reply.headers["OCPI-to-country-code"] == "NL"
    assert reply.headers["OCPI-to-party-id"] == "CPO"
    # Errors carry them too; ids are made up when the caller sent none.
    reply = httpx.get(str(cpo_client.base_url) + URL)
    assert reply.status_code == 401
    assert reply.headers["X-Request-ID"] and reply.headers["X-Correlation-ID"]


def test_no_routing_headers_on_versions_and_credentials(cpo_client: httpx.Client) -> None:
    for path in ("/ocpi/versions", "/ocpi/2.2.1/credentials"):
        reply = cpo_client.get(path)
        assert reply.status_code == 200
        assert "OCPI-from-country-code" not in reply.headers
        assert reply.headers["X-Request-ID"]


def test_versions_and_details(ems: RunningEms, cpo_client: httpx.Client) -> None:
    versions = cpo_client.get("/ocpi/versions").json()["data"]
    assert versions == [{"version": "2.2.1", "url": f"{ems.url}/ocpi/2.2.1"}]
    details = cpo_client.get("/ocpi/2.2.1").json()["data"]
    modules = {(e["identifier"], e["role"]): e["url"] for e in details["endpoints"]}
    assert modules[("sessions", "RECEIVER")] == f"{ems.url}/ocpi/2.2.1/sessions"
    assert modules[("chargingprofiles", "SENDER")] == f"{ems.url}/ocpi/2.2.1/chargingprofiles/"
    assert ("credentials", "SENDER") in modules and ("locations", "RECEIVER") in modules


def test_unknown_path_and_method_get_the_envelope(cpo_client: httpx.Client) -> None:
    reply = cpo_client.get("/ocpi/2.2.1/tariffs/NL/CPO/t1")
    assert reply.status_code == 404 and reply.json()["status_code"] == 2000
    reply = cpo_client.post(URL, json=session())
    assert reply.status_code == 405 and reply.json()["status_code"] == 2000
