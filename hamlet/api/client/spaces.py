"""Spaces: GET /_matrix/client/v1/rooms/{roomId}/hierarchy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.core.ids import is_room_id
from hamlet.handlers.common.errors import InvalidParamError


@dataclass(frozen=True, slots=True)
class HierarchyQuery:
    suggested_only: bool
    max_depth: int | None
    limit: int | None
    from_token: str | None

    @classmethod
    def parse(cls, req: ApiRequest) -> HierarchyQuery:
        room_id = req.params["roomId"]
        if not is_room_id(room_id):
            raise InvalidParamError(f"{room_id!r} is not a room ID")
        return cls(
            suggested_only=req.query_bool("suggested_only"),
            max_depth=req.query_int("max_depth"),
            limit=req.query_int("limit"),
            from_token=req.query.get("from"),
        )


async def hierarchy(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate(allow_guest=True)
    query = HierarchyQuery.parse(req)
    return await req.hs.spaces.get_hierarchy(
        requester.user_id,
        req.params["roomId"],
        suggested_only=query.suggested_only,
        max_depth=query.max_depth,
        limit=query.limit,
        from_token=query.from_token,
    )


def register(router: Router) -> None:
    router.add("GET", "/_matrix/client/v1/rooms/{roomId}/hierarchy", hierarchy)
