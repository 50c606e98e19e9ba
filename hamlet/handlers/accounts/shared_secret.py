"""Synapse's shared-secret registration (`/_synapse/admin/v1/register`).

A client fetches a nonce, then posts the new user's details with an
HMAC-SHA1 (keyed by `registration_shared_secret`) over
`nonce NUL username NUL password NUL admin|notadmin [NUL user_type]`.
Nonces are single-use and expire after a minute. Works whether or not
registration is open, so Synapse's `register_new_matrix_user` works as is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from hamlet.config import HomeServerConfig
from hamlet.handlers.accounts.register import RegistrationHandler
from hamlet.handlers.common.errors import BadJsonError, ForbiddenError, MatrixError
from hamlet.handlers.common.service import ServiceBase
from hamlet.runtime.clock import Clock, DelayedCall

NONCE_LIFETIME_S = 60.0
MAX_NONCES = 10_000


def registration_mac(
    secret: str,
    nonce: str,
    username: str,
    password: str,
    admin: bool,
    user_type: str | None = None,
) -> str:
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(username.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    if user_type:
        mac.update(b"\x00")
        mac.update(user_type.encode("utf-8"))
    return mac.hexdigest()


def _str_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise MatrixError(400, "M_MISSING_PARAM", f"{name} must be specified")
        return None
    if not isinstance(value, str) or len(value) > 512 or "\x00" in value:
        raise MatrixError(400, "M_INVALID_PARAM", f"Invalid {name}")
    return value


class SharedSecretRegistration(ServiceBase):
    def __init__(
        self, clock: Clock, config: HomeServerConfig, registration: RegistrationHandler
    ) -> None:
        self._clock = clock
        self._secret = config.registration_shared_secret
        self._registration = registration
        self._nonces: dict[str, DelayedCall] = {}

    def _require_enabled(self) -> str:
        if self._secret is None:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        return self._secret

    def new_nonce(self) -> str:
        self._require_enabled()
        while len(self._nonces) >= MAX_NONCES:
            oldest = next(iter(self._nonces))
            self._nonces.pop(oldest).cancel()
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = self._clock.call_later(NONCE_LIFETIME_S, self._nonces.pop, nonce)
        return nonce

    async def register(self, body: dict[str, Any]) -> dict[str, Any]:
        secret = self._require_enabled()
        nonce = _str_field(body, "nonce")
        assert nonce is not None
        timer = self._nonces.pop(nonce, None)
        if timer is None:
            raise MatrixError(400, "M_UNKNOWN", "unrecognised nonce")
        timer.cancel()
        username = _str_field(body, "username")
        password = _str_field(body, "password")
        assert username is not None and password is not None
        displayname = _str_field(body, "displayname", required=False)
        admin = body.get("admin", False)
        if not isinstance(admin, bool):
            raise BadJsonError("admin must be a boolean")
        user_type = _str_field(body, "user_type", required=False)
        got_mac = body.get("mac")
        if not isinstance(got_mac, str):
            raise MatrixError(400, "M_MISSING_PARAM", "mac must be specified")
        want = registration_mac(secret, nonce, username, password, admin, user_type)
        if not hmac.compare_digest(want.encode(), got_mac.encode()):
            raise ForbiddenError("HMAC incorrect")
        user_id = await self._registration.register_user(
            username.lower(),
            password,
            admin=admin,
            user_type=user_type,
            displayname=displayname,
        )
        return await self._registration.create_login(user_id, None, None)

    async def shutdown(self) -> None:
        for timer in self._nonces.values():
            timer.cancel()
        self._nonces.clear()
