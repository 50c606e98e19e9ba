"""GET /capabilities: what this server lets the user change."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS


async def capabilities(req: ApiRequest) -> dict[str, Any]:
    hs = req.hs
    await req.authenticate(allow_guest=True)
    config = hs.config
    return {
        "capabilities": {
            "m.change_password": {"enabled": hs.account.can_change_password},
            "m.room_versions": {
                "default": config.default_room_version,
                "available": {v: "stable" for v in KNOWN_ROOM_VERSIONS},
            },
            "m.set_displayname": {"enabled": config.enable_set_displayname},
            "m.set_avatar_url": {"enabled": config.enable_set_avatar_url},
            "m.3pid_changes": {"enabled": False},
        }
    }


def register(router: Router) -> None:
    router.add_client("GET", "/capabilities", capabilities)
