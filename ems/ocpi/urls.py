"""The one rule for joining OCPI URLs.

Modules differ (`{url}/{cc}/{pid}/{id}` for sessions, `{url}{session_id}` for chargingprofiles)
and partners publish endpoint URLs with or without a trailing slash, so every URL we build goes
through `join_url`: exactly one `/` between the parts, whatever each side brings.
"""

from __future__ import annotations

from urllib.parse import quote


def join_url(base: str, *parts: str) -> str:
    url = base.rstrip("/")
    for part in parts:
        url += "/" + quote(part.strip("/"), safe="*-._~")
    return url
