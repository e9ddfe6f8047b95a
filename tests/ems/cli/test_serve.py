"""The public URL `ems serve` derives when `EMS_PUBLIC_URL` is unset."""

from __future__ import annotations

import socket

from ems.cli.serve import listening_url


def test_a_named_address_is_kept() -> None:
    assert listening_url("127.0.0.1", 8123) == "http://127.0.0.1:8123"
    assert listening_url("ems.example", 80) == "http://ems.example:80"


def test_ipv6_is_bracketed() -> None:
    assert listening_url("::1", 8123) == "http://[::1]:8123"


def test_a_wildcard_names_this_machine() -> None:
    for wildcard in ("0.0.0.0", "::", ""):
        url = listening_url(wildcard, 8000)
        assert url.endswith(":8000") and "0.0.0.0" not in url and "[::]" not in url
        assert socket.getfqdn() in url
