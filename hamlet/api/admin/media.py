"""Synapse's media admin API: delete one media, quarantine and release it."""

from __future__ import annotations

from typing import Any

from hamlet.api.admin.auth import require_admin
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router

BASE = "/_synapse/admin/v1/media"


async def delete_media(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.media.delete(req.params["serverName"], req.params["mediaId"])


async def quarantine_media(req: ApiRequest) -> dict[str, Any]:
    requester = await require_admin(req)
    await req.hs.media.set_quarantined(
        req.params["serverName"], req.params["mediaId"], requester.user_id
    )
    return {}


async def unquarantine_media(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    await req.hs.media.set_quarantined(req.params["serverName"], req.params["mediaId"], None)
    return {}


def register(router: Router) -> None:
    router.add("POST", f"{BASE}/quarantine/{{serverName}}/{{mediaId}}", quarantine_media)
    router.add("POST", f"{BASE}/unquarantine/{{serverName}}/{{mediaId}}", unquarantine_media)
    router.add("DELETE", f"{BASE}/{{serverName}}/{{mediaId}}", delete_media)
