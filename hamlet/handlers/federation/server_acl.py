"""Server ACLs applied to what other servers send and ask (the spec's
"Server Access Control Lists").

`ServerAcls` is the one place that decides: room-scoped federation routes
call `check` (403 `M_FORBIDDEN` for a denied origin), a transaction's PDUs
and room EDUs pass through `refuse_pdus` and `filter_edu`. A room's ACL is
its current `m.room.server_acl` state event, compiled once per event ID
(`core/server_acl.py`); rooms without one, and rooms we do not know,
allow everyone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Final

from hamlet.core.canonical_json import JsonDict
from hamlet.core.errors import EventFormatError
from hamlet.core.events import compute_event_id
from hamlet.core.room_versions import get_room_version
from hamlet.core.server_acl import SERVER_ACL, ServerAcl
from hamlet.handlers.common.errors import ForbiddenError
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.rooms.state import StateHandler
from hamlet.runtime.lru import LruCache
from hamlet.storage.stores.rooms import RoomsStore

logger = logging.getLogger(__name__)

#: Compiled ACLs kept, by event ID (an event never changes, so no invalidation).
ACLS_CACHED: Final = 1000
#: Rooms of one receipt EDU looked at; the receipt handler walks no more.
MAX_RECEIPT_ROOMS: Final = 100
#: Rough size of one compiled ACL with its remembered answers.
ACL_BYTES: Final = 20_000

DENIED: Final = "Server is banned from room"


class ServerAcls(ServiceBase):
    name = "server_acls"

    def __init__(self, *, state: StateHandler, rooms: RoomsStore) -> None:
        self._state = state
        self._rooms = rooms
        self._compiled: LruCache[str, ServerAcl] = LruCache(ACLS_CACHED)

    async def allows(self, server_name: str, room_id: str) -> bool:
        ids = await self._state.get_current_state_ids(room_id)
        event_id = ids.get((SERVER_ACL, ""))
        if event_id is None:
            return True
        acl = self._compiled.get(event_id)
        if acl is None:
            stored = await self._state.event_cache.get(event_id)
            content = stored.event.content if stored is not None else {}
            acl = ServerAcl.from_content(content)
            self._compiled.set(event_id, acl)
        return acl.allows(server_name)

    async def check(self, server_name: str, room_id: str) -> None:
        """403 `M_FORBIDDEN` if the room's ACL denies `server_name`."""
        if not await self.allows(server_name, room_id):
            logger.info(
                "Refusing %s's request in %s: denied by the room's ACL", server_name, room_id
            )
            raise ForbiddenError(DENIED)

    async def refuse_pdus(
        self, origin: str, pdus: Sequence[Any]
    ) -> tuple[list[Any], dict[str, JsonDict]]:
        """`pdus` split into those to handle and error entries (by event ID)
        for those whose room denies `origin`. A denied PDU whose ID cannot
        be computed is dropped, as a malformed one would be."""
        verdicts: dict[str, bool] = {}
        kept: list[Any] = []
        refused: dict[str, JsonDict] = {}
        for pdu in pdus:
            room_id = pdu.get("room_id") if isinstance(pdu, Mapping) else None
            if not isinstance(room_id, str):
                kept.append(pdu)
                continue
            if room_id not in verdicts:
                verdicts[room_id] = await self.allows(origin, room_id)
            if verdicts[room_id]:
                kept.append(pdu)
                continue
            event_id = await self._event_id(pdu, room_id)
            if event_id is not None:
                logger.info("PDU %s from %s refused by the ACL of %s", event_id, origin, room_id)
                refused[event_id] = {"error": DENIED}
        return kept, refused

    async def _event_id(self, pdu: Mapping[str, Any], room_id: str) -> str | None:
        room = await self._rooms.get_room(room_id)
        if room is None:
            return None
        try:
            return compute_event_id(pdu, get_room_version(room.room_version))
        except EventFormatError:
            return None

    async def filter_edu(self, origin: str, edu: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The EDU without what concerns rooms denying `origin` (None: nothing
        left). Typing is per room; receipts are grouped by room."""
        edu_type, content = edu["edu_type"], edu["content"]
        if edu_type == "m.typing":
            room_id = content.get("room_id")
            if isinstance(room_id, str) and not await self.allows(origin, room_id):
                logger.info("Typing EDU from %s ignored: denied by the ACL of %s", origin, room_id)
                return None
            return edu
        if edu_type == "m.receipt":
            allowed: dict[str, Any] = {}
            for room_id, receipts in list(content.items())[:MAX_RECEIPT_ROOMS]:
                if await self.allows(origin, room_id):
                    allowed[room_id] = receipts
                else:
                    logger.info(
                        "Receipts from %s ignored: denied by the ACL of %s", origin, room_id
                    )
            return {**edu, "content": allowed} if allowed else None
        return edu

    def memory_usage(self) -> int:
        return ACL_BYTES * len(self._compiled)

    def clear_caches(self) -> None:
        self._compiled.clear()
