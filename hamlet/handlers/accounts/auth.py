"""Access tokens: issuing them, and turning a client's token into a `Requester`.

The API layer hands over a `ClientInfo` (token, address, user agent); this
module never sees HTTP. Tokens carry 256 bits of randomness and are stored only as their SHA-256
hash, so a copy of the database yields no usable token. Lookups are cached
per homeserver (bounded, LRU) and the cache is invalidated whenever tokens
are revoked. A token is never logged.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections import OrderedDict

from hamlet.handlers.appservice.registry import AppService, AppServices
from hamlet.handlers.common.errors import AuthError, ForbiddenError, MatrixError
from hamlet.handlers.common.requester import ClientInfo, Requester
from hamlet.handlers.common.service import ENTRY_BYTES, ServiceBase
from hamlet.runtime.clock import Clock
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.devices import DeviceStore, TokenOwner

TOKEN_CACHE_SIZE = 10_000
# How long a cached token owner (and its admin/locked/... flags) is trusted.
# Changes made through this server invalidate the cache at once; this bounds
# how long one written to the database from outside (`hamlet admin
# make-admin`, another process, SQL by hand) goes unseen.
TOKEN_CACHE_TTL_S = 30.0
# How often (at most) a device's last-seen time and address are written.
LAST_SEEN_INTERVAL_S = 60.0
_LAST_SEEN_TRACKED = 10_000


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def generate_access_token(user_id: str) -> str:
    """`syt_<base64 localpart>_<43 chars of urlsafe randomness: 256 bits>`."""
    localpart = user_id[1:].split(":", 1)[0]
    b64 = base64.urlsafe_b64encode(localpart.encode("utf-8")).decode("ascii").rstrip("=")
    return f"syt_{b64}_{secrets.token_urlsafe(32)}"


class AuthHandler(ServiceBase):
    def __init__(
        self,
        clock: Clock,
        devices: DeviceStore,
        *,
        session_lifetime_ms: int | None = None,
        app_services: AppServices | None = None,
        accounts: AccountStore | None = None,
    ) -> None:
        self._clock = clock
        self._devices = devices
        self._app_services = app_services or AppServices((), "")
        self._accounts = accounts
        self._session_lifetime_ms = session_lifetime_ms
        # token hash -> (owner, when it was read, on the clock's monotonic time)
        self._cache: OrderedDict[str, tuple[TokenOwner, float]] = OrderedDict()
        self._by_user: dict[str, set[str]] = {}
        # Bumped on every invalidation: a lookup that started before one
        # must not put what it read into the cache.
        self._generation = 0
        self._last_seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    # Issuing and revoking

    async def issue_token(self, user_id: str, device_id: str | None) -> str:
        token = generate_access_token(user_id)
        await self._devices.add_access_token(
            hash_token(token), user_id, device_id, self._clock.time_msec()
        )
        return token

    async def revoke_token(self, token_id: str) -> None:
        await self._devices.delete_access_token(token_id)
        self.invalidate_tokens([token_id])

    def invalidate_tokens(self, token_ids: list[str]) -> None:
        self._generation += 1
        for token_id in token_ids:
            cached = self._cache.pop(token_id, None)
            if cached is not None:
                owner = cached[0]
                hashes = self._by_user.get(owner.user_id)
                if hashes is not None:
                    hashes.discard(token_id)
                    if not hashes:
                        del self._by_user[owner.user_id]

    def invalidate_user(self, user_id: str) -> None:
        """Forget every cached token of the user (after any change to the user)."""
        self._generation += 1
        for token_id in self._by_user.pop(user_id, set()):
            self._cache.pop(token_id, None)

    def __len__(self) -> int:
        """Cached token owners."""
        return len(self._cache)

    def memory_usage(self) -> int:
        return len(self._cache) * ENTRY_BYTES

    def clear_caches(self) -> None:
        self._generation += 1
        self._cache.clear()
        self._by_user.clear()

    def _remember(self, token_id: str, owner: TokenOwner) -> None:
        self._cache[token_id] = (owner, self._clock.monotonic())
        self._by_user.setdefault(owner.user_id, set()).add(token_id)
        while len(self._cache) > TOKEN_CACHE_SIZE:
            old_id, (old, _read_at) = self._cache.popitem(last=False)
            hashes = self._by_user.get(old.user_id)
            if hashes is not None:
                hashes.discard(old_id)
                if not hashes:
                    del self._by_user[old.user_id]

    # Looking up

    async def _owner(self, token_id: str) -> TokenOwner | None:
        cached = self._cache.get(token_id)
        if cached is not None and self._clock.monotonic() - cached[1] < TOKEN_CACHE_TTL_S:
            self._cache.move_to_end(token_id)
            return cached[0]
        generation = self._generation
        owner = await self._devices.get_token_owner(token_id)
        if owner is not None and generation == self._generation:
            self._remember(token_id, owner)
        return owner

    async def get_user_by_access_token(
        self, token: str | None, *, allow_guest: bool = False
    ) -> Requester:
        """The requester behind a bare token.

        `401 M_MISSING_TOKEN` without a token, `401 M_UNKNOWN_TOKEN` for one
        that is not (or no longer) valid; an expired login-as token is
        `M_UNKNOWN_TOKEN` with `soft_logout: true`, checked against the clock
        on every lookup (a cached owner included), not only when the sweep
        deletes it.
        """
        if token is None:
            raise AuthError("M_MISSING_TOKEN", "Missing access token", soft_logout=False)
        token_id = hash_token(token)
        owner = await self._owner(token_id)
        if owner is None or owner.deactivated or self._expired(owner):
            raise AuthError("M_UNKNOWN_TOKEN", "Unknown access token", soft_logout=False)
        if owner.valid_until_ms is not None and owner.valid_until_ms <= self._clock.time_msec():
            raise AuthError("M_UNKNOWN_TOKEN", "Access token has expired", soft_logout=True)
        if owner.locked:
            raise AuthError("M_USER_LOCKED", "This account has been locked", soft_logout=True)
        if owner.is_guest and not allow_guest:
            raise ForbiddenError("Guest access not allowed", errcode="M_GUEST_ACCESS_FORBIDDEN")
        return Requester(
            user_id=owner.user_id,
            device_id=owner.device_id,
            is_guest=owner.is_guest,
            is_admin=owner.admin,
            shadow_banned=owner.shadow_banned,
            token_id=token_id,
        )

    def _expired(self, owner: TokenOwner) -> bool:
        """Is the token older than `session_lifetime`?

        Synapse fixes a token's expiry when it is issued; here the lifetime
        applies to the token's age, so turning it on (or shortening it)
        after a leak also ends the sessions already open.
        """
        lifetime = self._session_lifetime_ms
        return lifetime is not None and self._clock.time_msec() - owner.token_created_ts >= lifetime

    async def get_user_by_req(self, client: ClientInfo, *, allow_guest: bool = False) -> Requester:
        """The requester behind a client's request; notes the device's last-seen time and address.

        Errors as `get_user_by_access_token`. An application service's
        `as_token` is looked up first (as Synapse does), so it can never be
        shadowed by a user's token.
        """
        token = client.access_token
        service = self._app_services.by_token(token) if token is not None else None
        if service is not None:
            return await self._app_service_requester(service, client)
        requester = await self.get_user_by_access_token(
            client.access_token, allow_guest=allow_guest
        )
        if requester.device_id is not None:
            self._note_last_seen(
                requester.user_id, requester.device_id, client.ip, client.user_agent
            )
        return requester

    async def _app_service_requester(self, service: AppService, client: ClientInfo) -> Requester:
        """The service's sender, or the user (and device) it asserts.

        An asserted user must be in the service's users namespace and
        registered (`403 M_FORBIDDEN` otherwise, as Synapse); an asserted
        device must be one of that user's (MSC3202 device masquerading).
        """
        user_id = client.assert_user_id or service.sender
        if user_id != service.sender:
            if not service.owns_user(user_id):
                raise ForbiddenError("Application service cannot masquerade as this user.")
            if self._accounts is not None and not await self._accounts.user_exists(user_id):
                raise ForbiddenError("Application service has not registered this user.")
        device_id = client.assert_device_id
        if device_id is not None:
            if await self._devices.get_device(user_id, device_id) is None:
                raise MatrixError(
                    400, "M_UNKNOWN_DEVICE", "Application service has not registered this device."
                )
        return Requester(
            user_id=user_id,
            device_id=device_id,
            app_service_id=service.id,
            ratelimited=service.config.rate_limited,
        )

    def _note_last_seen(
        self, user_id: str, device_id: str, ip: str, user_agent: str | None
    ) -> None:
        key = (user_id, device_id)
        now = self._clock.time()
        last = self._last_seen.get(key)
        if last is not None and now - last < LAST_SEEN_INTERVAL_S:
            return
        self._last_seen[key] = now
        self._last_seen.move_to_end(key)
        while len(self._last_seen) > _LAST_SEEN_TRACKED:
            self._last_seen.popitem(last=False)
        self._clock.run_as_background_process(
            "update_device_last_seen",
            self._devices.update_last_seen,
            user_id,
            device_id,
            int(now * 1000),
            ip,
            user_agent,
        )

    async def shutdown(self) -> None:
        self.clear_caches()
        self._last_seen.clear()
