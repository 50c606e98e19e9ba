"""A fake remote server that makes signed PDUs for rooms on a test homeserver.

Its events go straight to `FederatedEventHandler.persist_event`, as the
federation endpoints will hand them over once they have checked
signatures and hashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hamlet.core.auth_rules import auth_types_for_event
from hamlet.core.crypto import SigningKey, generate_signing_key
from hamlet.core.events import Event, build_event
from hamlet.homeserver import HomeServer
from hamlet.storage.stores.events import StoredEvent


@dataclass
class RemoteServer:
    server_name: str = "remote.example"
    key: SigningKey = field(default_factory=generate_signing_key)
    clock_ms: int = 1_700_000_000_000

    def user(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    async def make(
        self,
        hs: HomeServer,
        room_id: str,
        sender: str,
        type: str,
        content: dict[str, Any],
        *,
        state_key: str | None = None,
        prev_events: list[str] | None = None,
        auth_from: list[str] | None = None,
        extra_auth: list[str] | None = None,
        ts: int | None = None,
        depth: int | None = None,
        redacts: str | None = None,
    ) -> Event:
        """An event built on `prev_events` (default: the room's extremities),
        with auth events picked from the state after `auth_from` (default:
        the prev_events), as a well-behaved remote server builds one, plus
        `extra_auth` as a misbehaving one might."""
        store = hs.events_store
        if prev_events is None:
            prev_events = [x.event_id for x in await store.get_forward_extremities(room_id)]
        prevs = await store.get_events(prev_events, include_rejected=True)
        basis = await store.get_events(auth_from or prev_events, include_rejected=True)
        state: dict[tuple[str, str], str] = {}
        for stored in basis.values():
            assert stored.state_group is not None
            state.update(await store.get_state_ids(stored.state_group))
        version = await hs.event_creator.room_version(room_id)
        wanted = auth_types_for_event(version, type, state_key, sender, content)
        auth_events = sorted({state[k] for k in wanted if k in state} | set(extra_auth or []))
        if ts is None:
            self.clock_ms += 1000
            ts = self.clock_ms
        return build_event(
            version,
            room_id=room_id,
            sender=sender,
            type=type,
            content=content,
            state_key=state_key,
            prev_events=prev_events,
            auth_events=auth_events,
            depth=depth or max(s.event.depth for s in prevs.values()) + 1,
            origin_server_ts=ts,
            server_name=self.server_name,
            signing_key=self.key,
            redacts=redacts,
        )

    async def send(self, hs: HomeServer, event: Event, **kwargs: Any) -> StoredEvent:
        return await hs.federated_events.persist_event(event, **kwargs)

    async def join(self, hs: HomeServer, room_id: str, localpart: str) -> StoredEvent:
        user_id = self.user(localpart)
        event = await self.make(
            hs, room_id, user_id, "m.room.member", {"membership": "join"}, state_key=user_id
        )
        stored = await self.send(hs, event)
        assert stored.in_timeline, stored
        return stored
