"""The homeserver's application services and the namespace questions about them.

Built from the config alone. Answers which service an `as_token` belongs
to, whether a user ID or alias is in a service's namespace, and whether
someone else may claim it (`M_EXCLUSIVE`).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator

from hamlet.config.appservice import AppServiceConfig, Namespace
from hamlet.handlers.common.errors import MatrixError


def exclusive_error(what: str) -> MatrixError:
    return MatrixError(400, "M_EXCLUSIVE", f"This {what} is reserved by an application service.")


def _any_match(namespaces: Iterable[Namespace], value: str, *, exclusive: bool = False) -> bool:
    return any((ns.exclusive or not exclusive) and ns.matches(value) for ns in namespaces)


class AppService:
    """One registered service, with its sender's user ID on this server."""

    def __init__(self, config: AppServiceConfig, server_name: str) -> None:
        self.config = config
        self.id = config.id
        self.server_name = server_name
        self.sender = f"@{config.sender_localpart}:{server_name}"

    @property
    def url(self) -> str | None:
        return self.config.url

    def is_local(self, user_id: str) -> bool:
        return user_id.endswith(":" + self.server_name)

    def is_interested_in_user(self, user_id: str) -> bool:
        """Its sender, or a user in its users namespace."""
        return user_id == self.sender or _any_match(self.config.users, user_id)

    def owns_user(self, user_id: str) -> bool:
        """May this service act as (register, assert) the user? Local users only."""
        return self.is_local(user_id) and self.is_interested_in_user(user_id)

    def is_exclusive_user(self, user_id: str) -> bool:
        return user_id == self.sender or _any_match(self.config.users, user_id, exclusive=True)

    def is_interested_in_alias(self, alias: str) -> bool:
        return _any_match(self.config.aliases, alias)

    def is_exclusive_alias(self, alias: str) -> bool:
        return _any_match(self.config.aliases, alias, exclusive=True)

    def is_interested_in_room_id(self, room_id: str) -> bool:
        return _any_match(self.config.rooms, room_id)

    def __repr__(self) -> str:
        return f"AppService({self.id!r})"


class AppServices:
    def __init__(self, configs: Iterable[AppServiceConfig], server_name: str) -> None:
        self._services = tuple(AppService(c, server_name) for c in configs)
        self._by_token_hash = {
            hashlib.sha256(s.config.as_token.encode()).digest(): s for s in self._services
        }
        self._by_id = {s.id: s for s in self._services}

    def __iter__(self) -> Iterator[AppService]:
        return iter(self._services)

    def __len__(self) -> int:
        return len(self._services)

    def by_id(self, as_id: str) -> AppService | None:
        return self._by_id.get(as_id)

    def by_token(self, token: str) -> AppService | None:
        """The service whose as_token this is, compared in constant time."""
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        for known, service in self._by_token_hash.items():
            if hmac.compare_digest(known, digest):
                return service
        return None

    def user_claimed_by_other(self, user_id: str, service: AppService | None) -> bool:
        """Is `user_id` in another service's exclusive namespace than `service`?"""
        return any(s is not service and s.is_exclusive_user(user_id) for s in self._services)

    def check_user_available(self, user_id: str, service: AppService | None = None) -> None:
        """`400 M_EXCLUSIVE` if a service (other than `service`) reserves the user ID."""
        if self.user_claimed_by_other(user_id, service):
            raise exclusive_error("user ID")

    def check_alias_available(self, alias: str, service: AppService | None = None) -> None:
        """`400 M_EXCLUSIVE` if a service (other than `service`) reserves the alias."""
        if any(s is not service and s.is_exclusive_alias(alias) for s in self._services):
            raise exclusive_error("alias")

    def service_for_user(self, user_id: str) -> AppService | None:
        """The service that owns a user: its sender, or whose users namespace holds it."""
        for s in self._services:
            if s.owns_user(user_id):
                return s
        return None

    def interested_in_alias(self, alias: str) -> list[AppService]:
        return [s for s in self._services if s.is_interested_in_alias(alias)]
