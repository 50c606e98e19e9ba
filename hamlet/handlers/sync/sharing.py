"""Finished /sync results kept for a while, for identical requests while nothing moved.

In-flight sharing (`handlers/common/shared.py`) only covers requests that
arrive while a build runs: a client that repeats a full sync in a loop, or
a flood of them in waves, would otherwise rebuild (and re-encode) the
same megabytes each time the previous wave has been answered. As Synapse
does (`caches.sync_response_cache_duration`), the last result of a request
that does not wait (initial, `full_state` or `timeout=0`) is kept and
answers an identical request again, with its encoded body.

Unlike Synapse's cache, a kept result is only served while it is provably
what a new build would return:
- no stream has moved since it was built (the notifier's token is the
  one the build read up to: events, typing, receipts, account data,
  to-device, presence, device lists);
- no one-time or fallback key of the tenant was uploaded or claimed
  (the key counts are no stream: `E2eKeysHandler.keys_generation`);
- no membership changed without an event (a room forgotten or purged:
  `MembershipCache.rewrites`);
- it carries no to-device message: those are deleted once a later token
  confirms them, by this or by another kind of sync of the device;
- the device has not built another sync since, which may have confirmed
  (and deleted) to-device messages or moved its other state: one result
  is kept per device (per access token, for a guest or an appservice
  without one).
What still varies with time alone (presence's `last_active_ago`) is as
old as the result, at most the configured duration.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final

from hamlet.handlers.common.requester import Requester
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.sync.results import SyncResult
from hamlet.runtime.clock import Clock, DelayedCall

#: Results kept per tenant at most, and their encoded bodies' bytes (the
#: least recently built go first): each may hold megabytes, and only a
#: repeated request needs one.
MAX_KEPT: Final = 64
MAX_KEPT_BYTES: Final = 32 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Position:
    """Everything a result depends on that is not in its request."""

    token: StreamToken
    keys_generation: int
    #: `RoomsStore.rewrites`: memberships changed without an event.
    membership_rewrites: int


@dataclass(slots=True)
class _Kept:
    key: Hashable
    position: Position
    result: SyncResult
    expiry: DelayedCall


def _holder(requester: Requester) -> Hashable:
    """Whose state a sync confirms: the device, or the token without one."""
    return (requester.user_id, requester.device_id, requester.token_id)


class KeptResults(ServiceBase):
    def __init__(self, clock: Clock, duration_ms: int) -> None:
        self._clock = clock
        self._duration_s = duration_ms / 1000
        self._kept: OrderedDict[Hashable, _Kept] = OrderedDict()

    def get(self, requester: Requester, key: Hashable, now: Position) -> SyncResult | None:
        """The kept result of the request `key`, if a build at `now` would give it."""
        kept = self._kept.get(_holder(requester))
        if kept is None or kept.key != key or kept.position != now:
            return None
        return kept.result

    def building(self, requester: Requester) -> None:
        """A sync of this device is being built: what is kept for it may be stale."""
        self._drop(_holder(requester))

    def keep(
        self, requester: Requester, key: Hashable, built_at: Position, result: SyncResult
    ) -> None:
        """Keep the result of a request that did not wait, built at `built_at`."""
        if self._duration_s <= 0 or result.to_device:
            return
        holder = _holder(requester)
        self._drop(holder)
        while self._kept and (len(self._kept) >= MAX_KEPT or self._bytes() > MAX_KEPT_BYTES):
            self._drop(next(iter(self._kept)))
        expiry = self._clock.call_later(self._duration_s, self._expire, holder, result)
        self._kept[holder] = _Kept(key, built_at, result, expiry)

    def _expire(self, holder: Hashable, result: SyncResult) -> None:
        kept = self._kept.get(holder)
        if kept is not None and kept.result is result:
            del self._kept[holder]

    def _drop(self, holder: Hashable) -> None:
        kept = self._kept.pop(holder, None)
        if kept is not None:
            kept.expiry.cancel()

    def __len__(self) -> int:
        return len(self._kept)

    # --- Service ---

    def clear_caches(self) -> None:
        for holder in list(self._kept):
            self._drop(holder)

    async def shutdown(self) -> None:
        self.clear_caches()

    def memory_usage(self) -> int:
        # The encoded bodies dominate; the result's objects are about as large again.
        return 2 * self._bytes()

    def _bytes(self) -> int:
        """The kept bodies' bytes (a result is encoded once served, after it is kept)."""
        return sum(sum(map(len, kept.result.encoded.values())) for kept in self._kept.values())
