"""POST /user/{userId}/openid/request_token."""

from __future__ import annotations

from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router


async def request_token(req: ApiRequest) -> dict[str, Any]:
    requester = await req.authenticate()
    # The body is `{}` by the spec; anything else that is not an object is refused.
    await req.json_object(allow_empty=True)
    return await req.hs.openid.request_token(requester.user_id, req.params["userId"])


def register(router: Router) -> None:
    router.add_client("POST", "/user/{userId}/openid/request_token", request_token)
