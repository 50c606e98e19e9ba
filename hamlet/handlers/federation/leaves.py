"""Leaving rooms across servers: `/make_leave` + `/send_leave` (v2).

Resident side: another server's user leaves (in practice: rejects an
invite to) one of our rooms, with the handshake joins and knocks use
(`membership_events.py`).

Leaving side (`reject_received_invite`, which `MembershipHandler` asks
about every local user's own leave): a local user rejects an invite to a
room we are not in. We ask the inviting server (then the room ID's) for a
template, sign the leave and send it back; when none of them will take it,
the leave is made here alone, as Synapse does, so an unreachable inviter
cannot leave the invite hanging. Either way the leave is stored out of
band and is the user's membership. Leaving a room we are in is an ordinary
local leave event, which the federation sender delivers.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from hamlet.core.canonical_json import JsonDict
from hamlet.core.dag import next_depth
from hamlet.core.events import Event, build_event
from hamlet.core.ids import get_domain_from_id
from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.federation.invites import FederationInvites
from hamlet.handlers.federation.knocks import own_stripped
from hamlet.handlers.federation.membership_events import (
    FEDERATION_V2,
    MEMBER,
    MembershipEvents,
)

logger = logging.getLogger(__name__)

#: Servers tried for one rejection.
MAX_CANDIDATES: Final = 3


class FederationLeaves:
    def __init__(self, *, membership_events: MembershipEvents, invites: FederationInvites) -> None:
        self._m = membership_events
        self._server_name = membership_events.server_name
        self._invites = invites

    # --- resident side ---

    async def make_leave(self, origin: str, room_id: str, user_id: str) -> JsonDict:
        room = await self._m.room(room_id)
        template = await self._m.template(origin, room, user_id, {"membership": "leave"})
        return self._m.template_answer(room, template)

    async def send_leave(self, origin: str, room_id: str, event_id: str, pdu: Any) -> JsonDict:
        event = await self._m.received(origin, room_id, event_id, pdu, "leave")
        await self._m.persist_received(event)
        return {}

    # --- leaving side ---

    async def reject_received_invite(
        self, user_id: str, room_id: str, reason: str | None = None
    ) -> Event | None:
        """When `user_id` holds an invite to a room we are not in, reject it
        and return the leave; None otherwise (a local leave is in order)."""
        invite = await self._invites.received_invite(user_id, room_id)
        if invite is None:
            return None
        content: dict[str, Any] = {"membership": "leave"}
        if reason:
            content["reason"] = reason
        servers = [get_domain_from_id(invite.sender), get_domain_from_id(room_id)]
        candidates = [s for s in dict.fromkeys(servers) if s and s != self._server_name]
        leave: Event | None = None
        for server in candidates[:MAX_CANDIDATES]:
            try:
                leave = await self._leave_via(server, user_id, room_id, content)
                break
            except MatrixError as e:
                logger.info("Rejecting %s through %s failed: %s", room_id, server, e.message)
        if leave is None:
            leave = self._local_leave(invite, content)
        await self._m.persister.persist_out_of_band(leave, [own_stripped(leave)])
        return leave

    async def _leave_via(
        self, server: str, user_id: str, room_id: str, content: dict[str, Any]
    ) -> Event:
        version, template = await self._m.ask_template(server, "make_leave", room_id, user_id)
        leave = self._m.build(version, user_id, room_id, template, content)
        await self._m.send(server, f"{FEDERATION_V2}/send_leave/{room_id}/{leave.event_id}", leave)
        return leave

    def _local_leave(self, invite: Event, content: dict[str, Any]) -> Event:
        """A leave only we know of, on top of the invite (Synapse's local rejection)."""
        assert invite.state_key is not None
        return build_event(
            invite.room_version,
            room_id=invite.room_id,
            sender=invite.state_key,
            type=MEMBER,
            content=content,
            state_key=invite.state_key,
            prev_events=[invite.event_id],
            auth_events=[invite.event_id],
            depth=next_depth([invite.depth]),
            origin_server_ts=self._m.clock.time_msec(),
            server_name=self._server_name,
            signing_key=self._m.signing_key,
        )
