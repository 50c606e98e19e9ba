"""Who sends an event, and so which of the sending policies apply to it."""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from typing import Final

from hamlet.handlers.common.requester import Requester

_EVENT_ID_ALPHABET: Final = string.ascii_letters + string.digits + "-_"


def fake_event_id() -> str:
    """An event ID that looks real but names nothing (for shadow-banned senders)."""
    return "$" + "".join(secrets.choice(_EVENT_ID_ALPHABET) for _ in range(43))


@dataclass(frozen=True, slots=True)
class Sender:
    user_id: str
    #: Scopes transaction IDs (a client's device; a server notice's own scope).
    device_id: str | None = None
    is_admin: bool = False
    shadow_banned: bool = False
    #: The server acting on its own (admin API, server notices, a profile
    #: change's new join events, deactivation): as Synapse sends these with
    #: `ratelimit=False`, they skip rate limits and shadow bans.
    internal: bool = False
    #: The application service acting for the user, if any.
    app_service_id: str | None = None
    #: False for an application service registered with `rate_limited: false`.
    ratelimited: bool = True
    #: An application service's `ts` (timestamp massaging): the event's
    #: `origin_server_ts` instead of now.
    origin_server_ts: int | None = None

    @classmethod
    def of(cls, requester: Requester, *, ts: int | None = None) -> Sender:
        """`ts` counts only for an application service (others get now, as Synapse)."""
        return cls(
            requester.user_id,
            requester.device_id,
            is_admin=requester.is_admin,
            shadow_banned=requester.shadow_banned,
            app_service_id=requester.app_service_id,
            ratelimited=requester.ratelimited,
            origin_server_ts=ts if requester.app_service_id is not None else None,
        )

    @classmethod
    def server(cls, user_id: str, *, txn_scope: str | None = None) -> Sender:
        return cls(user_id, txn_scope, internal=True)

    @property
    def exempt_from_limits(self) -> bool:
        return self.internal or self.is_admin or not self.ratelimited

    def txn_key(self, txn_id: str) -> tuple[str, str, str]:
        return (self.user_id, self.device_id or "", txn_id)
