"""Registration tokens for admins: create, list, inspect, change and delete them.

Answers are built here field by field (Synapse's shape), not from the
storage rows, so a new column never leaks onto the wire by accident.
"""

from __future__ import annotations

import re
import secrets
import string
from typing import Any, Final

from hamlet.handlers.common.errors import InvalidParamError, NotFoundError
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.registration_token_admin import RegistrationTokenAdminStore
from hamlet.storage.stores.registration_tokens import RegistrationToken, RegistrationTokenStore

TOKEN_CHARS: Final = string.ascii_letters + string.digits + "._~-"
_TOKEN_RE: Final = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")
_GENERATE_ATTEMPTS: Final = 10


def registration_token_json(token: RegistrationToken) -> dict[str, Any]:
    return {
        "token": token.token,
        "uses_allowed": token.uses_allowed,
        "pending": token.pending,
        "completed": token.completed,
        "expiry_time": token.expiry_time,
    }


class RegistrationTokensAdmin:
    def __init__(
        self, clock: Clock, tokens: RegistrationTokenStore, admin_store: RegistrationTokenAdminStore
    ) -> None:
        self._clock = clock
        self._tokens = tokens
        self._admin_store = admin_store

    def check_expiry_time(self, expiry_time: int | None) -> None:
        if expiry_time is not None and expiry_time < self._clock.time_msec():
            raise InvalidParamError("expiry_time must not be in the past")

    async def list_tokens(self, *, valid: bool | None) -> list[dict[str, Any]]:
        tokens = await self._admin_store.list_tokens(valid=valid, now_ms=self._clock.time_msec())
        return [registration_token_json(t) for t in tokens]

    async def get_token(self, token: str) -> dict[str, Any]:
        found = await self._tokens.get_token(token)
        if found is None:
            raise NotFoundError(f"No such registration token: {token}")
        return registration_token_json(found)

    async def create_token(
        self,
        token: str | None,
        *,
        length: int,
        uses_allowed: int | None,
        expiry_time: int | None,
    ) -> dict[str, Any]:
        """The named token, or a random one of `length` characters if `token` is None."""
        self.check_expiry_time(expiry_time)
        if token is not None:
            if not _TOKEN_RE.match(token):
                raise InvalidParamError(
                    "token must consist only of characters matched by the regex [A-Za-z0-9._~-]"
                    " and be no more than 64 characters long"
                )
            if not await self._tokens.create_token(
                token, uses_allowed=uses_allowed, expiry_time=expiry_time
            ):
                raise InvalidParamError(f"Token already exists: {token}")
            return await self.get_token(token)
        for _attempt in range(_GENERATE_ATTEMPTS):
            token = "".join(secrets.choice(TOKEN_CHARS) for _ in range(length))
            if await self._tokens.create_token(
                token, uses_allowed=uses_allowed, expiry_time=expiry_time
            ):
                return await self.get_token(token)
        raise InvalidParamError("Could not generate a free token; try a greater length")

    async def update_token(self, token: str, changes: dict[str, int | None]) -> dict[str, Any]:
        """Set `uses_allowed` and/or `expiry_time` (keys present in `changes`)."""
        if "expiry_time" in changes:
            self.check_expiry_time(changes["expiry_time"])
        if not await self._admin_store.update_token(token, changes):
            raise NotFoundError(f"No such registration token: {token}")
        return await self.get_token(token)

    async def delete_token(self, token: str) -> None:
        if not await self._admin_store.delete_token(token):
            raise NotFoundError(f"No such registration token: {token}")
