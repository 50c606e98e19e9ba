"""OpenID tokens (client-server `request_token`, federation `userinfo`).

A widget or integration manager gets a token from the user's client and
asks the user's homeserver who it belongs to; the answer is the only thing
the token proves, and for an hour only (as Synapse).
"""

from __future__ import annotations

import secrets
from typing import Any, Final

from hamlet.handlers.common.errors import AuthError, ForbiddenError
from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.clock import Clock, LoopingCall
from hamlet.storage.stores.openid import OpenIdStore

LIFETIME_MS: Final = 3600 * 1000
#: Unexpired tokens one user may hold; a client asking in a loop replaces
#: its own oldest ones instead of filling the database.
MAX_TOKENS_PER_USER: Final = 50
PURGE_INTERVAL_S: Final = 600.0


class OpenIdHandler(ServiceBase):
    def __init__(self, clock: Clock, store: OpenIdStore, server_name: str) -> None:
        self._clock = clock
        self._store = store
        self._server_name = server_name
        self._purge: LoopingCall | None = None

    def start(self) -> None:
        self._purge = self._clock.looping_call(self._purge_expired, PURGE_INTERVAL_S)

    async def shutdown(self) -> None:
        if self._purge is not None:
            self._purge.stop()
            self._purge = None

    async def _purge_expired(self) -> None:
        await self._store.delete_expired(self._clock.time_msec())

    async def request_token(self, requester: str, user_id: str) -> dict[str, Any]:
        if requester != user_id:
            raise ForbiddenError("Cannot request tokens for other users.")
        token = secrets.token_urlsafe(24)
        valid_until = self._clock.time_msec() + LIFETIME_MS
        await self._store.add(token, user_id, valid_until, keep=MAX_TOKENS_PER_USER)
        return {
            "access_token": token,
            "token_type": "Bearer",
            "matrix_server_name": self._server_name,
            "expires_in": LIFETIME_MS // 1000,
        }

    async def userinfo(self, token: str) -> dict[str, str]:
        user_id = await self._store.get_user(token, self._clock.time_msec())
        if user_id is None:
            raise AuthError("M_UNKNOWN_TOKEN", "Access Token unknown or expired")
        return {"sub": user_id}
