"""Builds the application services: the registry early (authentication,
registration and aliases consult it), the transaction sender and queries
once the rooms and history services exist."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from hamlet.handlers.appservice.http import JsonHttpClient
from hamlet.handlers.appservice.queries import MAX_CONCURRENT_QUERIES, AppServiceQueries
from hamlet.handlers.appservice.registry import AppServices
from hamlet.handlers.appservice.transactions import Ack, AppServiceTransactions, Ephemeral
from hamlet.handlers.common.service import BuildContext, ServiceBase
from hamlet.handlers.common.streams import StreamToken
from hamlet.handlers.container import Services
from hamlet.runtime.http_client import HttpClient
from hamlet.storage.stores.appservice import AppServiceStore

#: Of a service's users told of one device list move, how many are asked
#: what changed (each one's rooms are read; a bridge's users mostly share them).
MAX_DEVICE_LIST_OBSERVERS = 20


class _SenderUsers(ServiceBase):
    """Creates each service's sender user on first start (bridges assume it exists)."""

    def __init__(self, s: Services) -> None:
        self._s = s

    async def load(self) -> None:
        for service in self._s.app_services:
            if not await self._s.account_store.user_exists(service.sender):
                await self._s.registration.register_user(
                    service.config.sender_localpart, app_service=service
                )


class _HttpClientService(ServiceBase):
    """Closes the homeserver's outbound client for its services on shutdown."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    async def shutdown(self) -> None:
        await self.client.close()


def build_registry(ctx: BuildContext, s: Services) -> None:
    s.app_services = AppServices(ctx.config.app_services, ctx.server_name)
    # Its own pool: bridges are trusted destinations (no address filter), and
    # one bridge may have a transaction, pings and up to MAX_CONCURRENT_QUERIES
    # lookups open at once.
    client = ctx.own(
        _HttpClientService(HttpClient(max_connections_per_host=MAX_CONCURRENT_QUERIES + 4))
    ).client
    s.app_service_http = JsonHttpClient(client, ctx.clock)
    s.app_service_queries = AppServiceQueries(ctx.clock, s.app_services, s.app_service_http)


def build(ctx: BuildContext, s: Services) -> None:
    transactions = AppServiceTransactions(
        clock=ctx.clock,
        services=s.app_services,
        store=AppServiceStore(ctx.db),
        events=s.events_store,
        rooms=s.rooms_store,
        serialize=lambda events: s.event_serializer.serialize(events, bundle=False),
        events_position=lambda: s.event_creator.current_stream,
        http=s.app_service_http,
        accounts=s.account_store,
        queries=s.app_service_queries,
        sources=_Sources(s),
    )
    ctx.own(_SenderUsers(s))
    s.app_service_transactions = ctx.own(transactions)
    if len(s.app_services) == 0:
        return
    ephemeral = transactions.receives_ephemeral()

    def on_stream(stream: str, pos: int, users: Collection[str], rooms: Collection[str]) -> None:
        if stream == "events":
            transactions.wake()
        elif ephemeral:
            for item in _ephemeral(s, ctx.clock.time_msec(), stream, pos, users, rooms):
                transactions.add_ephemeral(item)

    s.notifier.add_listener(on_stream)


def _ephemeral(
    s: Services,
    now: int,
    stream: str,
    pos: int,
    users: Collection[str],
    rooms: Collection[str],
) -> list[Ephemeral]:
    """What one stream move means for bridges (a private receipt wakes only its
    owner, with no room, so it never reaches one)."""
    if stream == "typing":
        return [
            Ephemeral(
                event={
                    "type": "m.typing",
                    "room_id": room_id,
                    "content": {"user_ids": s.typing.typing_users(room_id)},
                },
                room_id=room_id,
            )
            for room_id in rooms
        ]
    if stream == "to_device":
        return [Ephemeral(users=tuple(users), to_device=True)]
    if stream == "device_lists":
        return [Ephemeral(users=tuple(users), device_lists_at=pos)]
    if stream == "receipts":
        return [Ephemeral(room_id=room_id, receipts_at=pos) for room_id in rooms]
    if stream == "presence":
        changed = [u for u in users if s.presence.get_state(u).stream_id == pos]
        return [
            Ephemeral(
                event={
                    "type": "m.presence",
                    "sender": user_id,
                    "content": s.presence.get_state(user_id).content(now),
                },
                users=tuple(users),
            )
            for user_id in changed
        ]
    return []


class _Sources:
    """Reads what transactions carry from the user streams and e2ee services."""

    def __init__(self, s: Services) -> None:
        self._s = s

    async def receipt_event(self, room_id: str, at: int) -> dict[str, Any] | None:
        updates = await self._s.receipts.get_updates("", [room_id], at - 1, at)
        room = updates.get(room_id)
        if room is None:
            return None
        return {"type": "m.receipt", "room_id": room_id, "content": room.content()}

    async def take_to_device(self, user_id: str, limit: int) -> tuple[list[dict[str, Any]], Ack]:
        to_device = self._s.to_device
        messages: list[dict[str, Any]] = []
        taken: list[tuple[str, int]] = []
        for device in await self._s.device_store.get_devices(user_id):
            if len(messages) >= limit:
                break
            events, upto = await to_device.get_updates(
                user_id, device.device_id, 0, limit - len(messages)
            )
            if events:
                messages += [
                    {"to_user_id": user_id, "to_device_id": device.device_id, **e} for e in events
                ]
                taken.append((device.device_id, upto))

        async def ack() -> None:
            for device_id, upto in taken:
                await to_device.delete_delivered(user_id, device_id, upto)

        return messages, ack

    async def device_list_changes(
        self, observers: Sequence[str], since: int, upto: int
    ) -> tuple[set[str], set[str]]:
        changed: set[str] = set()
        left: set[str] = set()
        for observer in observers[:MAX_DEVICE_LIST_OBSERVERS]:
            changes = await self._s.device_lists.get_changes(
                observer, StreamToken(device_lists=since), StreamToken(device_lists=upto)
            )
            changed |= changes.changed
            left |= changes.left
        return changed, left

    def device_lists_position(self) -> int:
        return self._s.device_lists.current_position()

    async def key_counts(
        self, user_id: str
    ) -> tuple[dict[str, dict[str, int]], dict[str, list[str]]]:
        keys = self._s.e2e_keys
        counts: dict[str, dict[str, int]] = {}
        fallback: dict[str, list[str]] = {}
        for device in await self._s.device_store.get_devices(user_id):
            counts[device.device_id] = await keys.one_time_key_counts(user_id, device.device_id)
            fallback[device.device_id] = await keys.unused_fallback_key_types(
                user_id, device.device_id
            )
        return counts, fallback
