"""Which streams an incremental /sync can skip without asking the database.

A woken long-poll usually has one new event for its user and nothing else.
The notifier knows, per user and per room, the last position each stream
reached for them (`Notifier.moved_since`), so a stream that did not move
past the sync's token for this user and their rooms has nothing to say,
and its query is not run. Every answer errs towards "moved": a token from
before this process, or a user or room the notifier no longer holds, reads
the stream as before.
"""

from __future__ import annotations

from collections.abc import Collection

from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.streams import StreamToken, SyncScope

#: Devices remembered as having no delivered message left to delete.
MAX_DRAINED_DEVICES = 10_000


class QuietStreams:
    """The skip decisions of /sync v3 (all joined rooms in scope). Each
    takes the token of an incremental sync; None (an initial or
    `full_state` sync) skips nothing."""

    def __init__(self, notifier: Notifier) -> None:
        self._notifier = notifier
        # (user, device) whose inbox held nothing up to the position its
        # last sync was given: no delivered message is waiting to be deleted.
        self._drained: set[tuple[str, str]] = set()

    def _moved(self, stream: str, since: StreamToken, scope: SyncScope, rooms: bool) -> bool:
        return self._notifier.moved_since(
            stream,
            since.get(stream),
            users=(scope.user_id,),
            rooms=scope.room_ids if rooms else (),
        )

    def account_data(self, scope: SyncScope, since: StreamToken | None) -> bool:
        return since is not None and not self._moved("account_data", since, scope, rooms=False)

    def receipts(self, scope: SyncScope, since: StreamToken | None) -> bool:
        return since is not None and not self._moved("receipts", since, scope, rooms=True)

    def memberships_still(self, scope: SyncScope, since: StreamToken) -> bool:
        """No membership changed in the user's rooms, nor of the user, since the token.

        Who shares a room with the user (presence, device lists) is then
        as it was.
        """
        notifier = self._notifier
        return not (
            notifier.moved_since("events", since.events, users=(scope.user_id,))
            or notifier.members_moved_since(since.events, rooms=scope.room_ids)
        )

    def presence(self, scope: SyncScope, since: StreamToken | None) -> bool:
        # A presence change is notified to whoever shared a room then; one
        # who shares a room since is a membership change.
        return (
            since is not None
            and not self._moved("presence", since, scope, rooms=False)
            and self.memberships_still(scope, since)
        )

    def device_lists(self, scope: SyncScope, since: StreamToken | None) -> bool:
        return (
            since is not None
            and not self._moved("device_lists", since, scope, rooms=False)
            and self.memberships_still(scope, since)
        )

    def to_device(self, scope: SyncScope, since: StreamToken | None) -> bool:
        device_id = scope.device_id
        return (
            since is not None
            and device_id is not None
            and (scope.user_id, device_id) in self._drained
            and not self._moved("to_device", since, scope, rooms=False)
        )

    def to_device_read(self, scope: SyncScope, messages: int) -> None:
        """The inbox was read past the sync's token (whose messages it deleted):
        drained if nothing was left."""
        if scope.device_id is None:
            return
        key = (scope.user_id, scope.device_id)
        if messages:
            self._drained.discard(key)
            return
        if len(self._drained) >= MAX_DRAINED_DEVICES:
            self._drained.clear()
        self._drained.add(key)

    def rooms_changed(self, room_ids: Collection[str], since_pos: int) -> set[str] | None:
        """Those of `room_ids` whose timeline may have moved past `since_pos`
        (a superset), or None when the notifier cannot tell."""
        notifier = self._notifier
        if not notifier.knows_since("events", since_pos):
            return None
        return {
            room_id
            for room_id in room_ids
            if notifier.moved_since("events", since_pos, rooms=(room_id,))
        }
