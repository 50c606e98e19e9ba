"""`PUT /rooms/{roomId}/typing/{userId}`."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import BadJsonError, MissingParamError
from hamlet.handlers.user_streams.typing import DEFAULT_TIMEOUT_MS


async def set_typing(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    body = await req.json_object()
    typing = body.get("typing")
    if typing is None:
        raise MissingParamError("Missing param: typing")
    if not isinstance(typing, bool):
        raise BadJsonError("'typing' must be a boolean")
    timeout = body.get("timeout", DEFAULT_TIMEOUT_MS)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise BadJsonError("'timeout' must be a non-negative integer")
    await req.hs.typing.set_typing(
        requester.user_id, req.params["userId"], req.params["roomId"], typing, timeout
    )
    return {}


def register(router: Router) -> None:
    router.add_client("PUT", "/rooms/{roomId}/typing/{userId}", set_typing)
