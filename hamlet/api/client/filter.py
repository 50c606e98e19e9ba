"""`POST /user/{userId}/filter` and `GET /user/{userId}/filter/{filterId}`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router


async def create_filter(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    filter_id = await req.hs.filters.create(requester.user_id, req.params["userId"], body)
    return {"filter_id": filter_id}


async def get_filter(req: ApiRequest) -> Any:
    requester = await req.authenticate()
    return await req.hs.filters.get_definition(
        requester.user_id, req.params["userId"], req.params["filterId"]
    )


def register(router: Router) -> None:
    router.add_client("POST", "/user/{userId}/filter", create_filter)
    router.add_client("GET", "/user/{userId}/filter/{filterId}", get_filter)
