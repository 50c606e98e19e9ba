"""Registrations and requests the application service tests share."""

from __future__ import annotations

from typing import Any

from tests.support.harness import Harness, Response

V3 = "/_matrix/client/v3"
AS_TOKEN = "as_token_bridge_one"
HS_TOKEN = "hs_token_bridge_one"


def registration(
    url: str | None,
    *,
    as_id: str = "bridge",
    as_token: str = AS_TOKEN,
    hs_token: str = HS_TOKEN,
    server: str = "test.local",
    **extra: Any,
) -> dict[str, Any]:
    """A bridge owning `@bridge_*` users and `#bridge_*` aliases, exclusively."""
    reg: dict[str, Any] = {
        "id": as_id,
        "url": url,
        "as_token": as_token,
        "hs_token": hs_token,
        "sender_localpart": f"{as_id}bot",
        "namespaces": {
            "users": [{"exclusive": True, "regex": f"@{as_id}_.*:{server}"}],
            "aliases": [{"exclusive": True, "regex": f"#{as_id}_.*:{server}"}],
        },
        "rate_limited": False,
    }
    reg.update(extra)
    return reg


async def as_request(
    h: Harness,
    method: str,
    path: str,
    *,
    token: str = AS_TOKEN,
    json: Any = None,
    host: str | None = None,
) -> Response:
    return await h.request(method, path, json=json, token=token, host=host)


async def register_ghost(
    h: Harness, localpart: str, *, token: str = AS_TOKEN, host: str | None = None
) -> Response:
    body = {"type": "m.login.application_service", "username": localpart}
    return await h.request("POST", f"{V3}/register", json=body, token=token, host=host)
