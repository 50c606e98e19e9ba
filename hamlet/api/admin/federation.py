"""Federation destinations, for admins: /_synapse/admin/v1/federation/destinations..."""

from __future__ import annotations

from typing import Any

from hamlet.api.admin._params import direction, offset_and_limit
from hamlet.api.admin.auth import require_admin
from hamlet.api.request import ApiRequest
from hamlet.api.router import Router

BASE = "/_synapse/admin/v1/federation/destinations"


async def list_destinations(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    start, limit = offset_and_limit(req, 100)
    return await req.hs.federation_destinations.list_destinations(
        start,
        limit,
        req.query.get("order_by", "destination"),
        direction(req, "f") == "b",
        req.query.get("destination") or None,
    )


async def get_destination(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    return await req.hs.federation_destinations.get_destination(req.params["destination"])


async def destination_rooms(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    start, limit = offset_and_limit(req, 100)
    return await req.hs.federation_destinations.destination_rooms(
        req.params["destination"], start, limit, direction(req, "f") == "b"
    )


async def reset_connection(req: ApiRequest) -> dict[str, Any]:
    await require_admin(req)
    await req.json_object(allow_empty=True)
    await req.hs.federation_destinations.reset_connection(req.params["destination"])
    return {}


def register(router: Router) -> None:
    router.add("GET", BASE, list_destinations)
    router.add("GET", f"{BASE}/{{destination}}", get_destination)
    router.add("GET", f"{BASE}/{{destination}}/rooms", destination_rooms)
    router.add("POST", f"{BASE}/{{destination}}/reset_connection", reset_connection)
