"""Federation routes that only an authenticated server may call.

`signed(handler)` checks the caller's X-Matrix signature, then holds one of
the origin's `rc_federation` slots while the handler runs (queued, slowed
or refused with 429 per origin, as Synapse's federation servlets are).
A route whose path names a room (`{roomId}`) is room-scoped: the room's
server ACL must allow the origin (403 `M_FORBIDDEN` otherwise), so every
such route, present or to come, is covered here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from hamlet.api.federation.auth import authenticate_origin
from hamlet.api.request import ApiRequest

SignedHandler = Callable[[ApiRequest, str], Awaitable[Any]]


def signed(handler: SignedHandler) -> Callable[[ApiRequest], Awaitable[Any]]:
    async def route(req: ApiRequest) -> Any:
        origin = await authenticate_origin(req)
        async with req.hs.federation_ratelimiter.ratelimit(origin):
            room_id = req.params.get("roomId")
            if room_id is not None:
                await req.hs.server_acls.check(origin, room_id)
            return await handler(req, origin)

    return route
