"""The one check every admin endpoint makes, and the list of admin routes.

`require_admin` answers `401` without a (valid) token and `403 M_FORBIDDEN`
for a user who is not a server admin, and logs each admin action under the
request's logging context. `admin_routes` lists every route under
`/_synapse/admin/`, so a test can prove that each of them (bar the public
ones) makes the check.
"""

from __future__ import annotations

import logging
from typing import Final

from hamlet.api.request import ApiRequest
from hamlet.api.router import Route, Router
from hamlet.handlers.common.errors import ForbiddenError
from hamlet.handlers.common.requester import Requester

logger = logging.getLogger("hamlet.admin")

ADMIN_PREFIX: Final = "/_synapse/admin/"

# Admin routes that need no admin token, as in Synapse: the server version,
# and shared-secret registration (authenticated by its HMAC instead).
PUBLIC_ADMIN_ROUTES: Final = frozenset(
    {
        ("GET", "/_synapse/admin/v1/server_version"),
        ("GET", "/_synapse/admin/v1/register"),
        ("POST", "/_synapse/admin/v1/register"),
    }
)


async def require_admin(req: ApiRequest) -> Requester:
    requester = await req.authenticate()
    requester = req.requester = await req.hs.account.current_admin_flag(requester)
    if not requester.is_admin:
        raise ForbiddenError("You are not a server admin")
    logger.info("Admin %s: %s %s", requester.user_id, req.method, req.http.path)
    return requester


def admin_routes(router: Router) -> list[Route]:
    return [r for r in router.routes() if r.pattern.startswith(ADMIN_PREFIX)]


def protected_admin_routes(router: Router) -> list[Route]:
    """The admin routes that must refuse anyone but a server admin."""
    return [r for r in admin_routes(router) if (r.method, r.pattern) not in PUBLIC_ADMIN_ROUTES]
