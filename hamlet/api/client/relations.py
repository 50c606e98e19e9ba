"""`GET /rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]]` (v1, also under v3)
and the threads list, `GET /_matrix/client/v1/rooms/{roomId}/threads`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import CLIENT_PREFIXES, Router
from hamlet.handlers.history.pagination import parse_direction, parse_limit
from hamlet.handlers.history.relations import DEFAULT_LIMIT


async def get_relations(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate(allow_guest=True)
    return await req.hs.relations.get_relations(
        requester.user_id,
        requester.device_id,
        req.params["roomId"],
        req.params["eventId"],
        rel_type=req.params.get("relType"),
        event_type=req.params.get("eventType"),
        from_token=req.query.get("from"),
        to_token=req.query.get("to"),
        limit=parse_limit(req.query_int("limit"), DEFAULT_LIMIT),
        backwards=parse_direction(req.query.get("dir")),
        recurse=req.query_bool("recurse") or req.query_bool("org.matrix.msc3981.recurse"),
    )


async def get_threads(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    return await req.hs.relations.get_threads(
        requester.user_id,
        requester.device_id,
        req.params["roomId"],
        include=req.query.get("include", "all"),
        from_token=req.query.get("from"),
        limit=parse_limit(req.query_int("limit"), DEFAULT_LIMIT),
    )


def register(router: Router) -> None:
    router.add("GET", "/_matrix/client/v1/rooms/{roomId}/threads", get_threads)
    base = "/rooms/{roomId}/relations/{eventId}"
    for prefix in ("/_matrix/client/v1", *CLIENT_PREFIXES):
        router.add("GET", prefix + base, get_relations)
        router.add("GET", prefix + base + "/{relType}", get_relations)
        router.add("GET", prefix + base + "/{relType}/{eventType}", get_relations)
