"""GET /_matrix/federation/v1/openid/userinfo: who an OpenID token belongs to.

Asked by widgets and integration managers, not by servers, so it is the
one federation endpoint without X-Matrix authentication.
"""

from __future__ import annotations

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import MissingParamError


async def userinfo(req: ApiRequest) -> dict[str, str]:
    token = req.query.get("access_token")
    if not token:
        raise MissingParamError("Missing string query parameter 'access_token'")
    return await req.hs.openid.userinfo(token)


def register(router: Router) -> None:
    router.add("GET", "/_matrix/federation/v1/openid/userinfo", userinfo)
