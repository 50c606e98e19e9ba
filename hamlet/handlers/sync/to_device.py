"""The `to_device` stream as a sync provider over `ToDeviceHandler`'s inbox."""

from __future__ import annotations

from hamlet.handlers.common.streams import StreamToken, SyncScope
from hamlet.handlers.sync.results import ToDeviceMessage, ToDeviceResult
from hamlet.handlers.user_streams.to_device import ToDeviceHandler


class ToDeviceProvider:
    """A device's inbox: what it has not confirmed yet.

    Syncing with a token is the device's confirmation that it got everything
    up to that token's position, so those messages are deleted first.
    """

    name = "to_device"

    def __init__(self, inbox: ToDeviceHandler) -> None:
        self._inbox = inbox

    def current_position(self) -> int:
        return self._inbox.current_position()

    async def changes(
        self, scope: SyncScope, since: StreamToken | None, upto: StreamToken
    ) -> ToDeviceResult:
        if scope.device_id is None:
            return ToDeviceResult([], upto.to_device)
        since_pos = since.to_device if since is not None else 0
        if since_pos:
            await self._inbox.delete_delivered(scope.user_id, scope.device_id, since_pos)
        events, position = await self._inbox.get_updates(scope.user_id, scope.device_id, since_pos)
        messages = [ToDeviceMessage(e["sender"], e["type"], e["content"]) for e in events]
        return ToDeviceResult(messages, max(position, 0))
