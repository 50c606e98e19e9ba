"""The UIA stages this server offers: dummy, password and registration token."""

from __future__ import annotations

from typing import Any

from hamlet.handlers.accounts import ratelimits as account_ratelimits
from hamlet.handlers.accounts.login import (
    LOGIN_TYPE_PASSWORD,
    LoginHandler,
    user_id_from_identifier,
)
from hamlet.handlers.accounts.register import STAGE_DUMMY, STAGE_REGISTRATION_TOKEN
from hamlet.handlers.accounts.uia import StageChecker, StageFailedError, UiaSession
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.registration_tokens import RegistrationTokenStore

MAX_TOKEN_LENGTH = 64


def stage_checkers(
    *,
    clock: Clock,
    server_name: str,
    login: LoginHandler,
    limits: account_ratelimits.AccountRatelimiters,
    tokens: RegistrationTokenStore,
) -> dict[str, StageChecker]:
    async def dummy(auth: dict[str, Any], session: UiaSession) -> bool:
        return True

    async def password(auth: dict[str, Any], session: UiaSession) -> str:
        user_id = user_id_from_identifier(auth, server_name)
        secret = auth.get("password")
        if not isinstance(secret, str):
            raise StageFailedError("Missing or invalid password", errcode="M_BAD_JSON")
        key = (session.user_id or user_id).lower()
        await limits.uia_failed.ratelimit(key, update=False)
        user = await login.check_password(user_id, secret)
        if user is None or user.deactivated:
            await limits.uia_failed.ratelimit(key)
            raise StageFailedError("Invalid password")
        if session.user_id is not None and user.user_id != session.user_id:
            raise StageFailedError("Invalid auth")
        return user.user_id

    async def registration_token(auth: dict[str, Any], session: UiaSession) -> str:
        token = auth.get("token")
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise StageFailedError("Invalid registration token", errcode="M_UNAUTHORIZED")
        if not await tokens.reserve_use(token, clock.time_msec()):
            raise StageFailedError("Invalid registration token", errcode="M_UNAUTHORIZED")

        async def release() -> None:
            await tokens.release_use(token)

        session.on_expire.append(release)
        return token

    return {
        STAGE_DUMMY: dummy,
        LOGIN_TYPE_PASSWORD: password,
        STAGE_REGISTRATION_TOKEN: registration_token,
    }
