"""Builds the application services: the registry early (authentication,
registration and aliases consult it), the transaction sender and queries
once the rooms and history services exist."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hamlet.handlers.appservice.queries import AppServiceQueries
from hamlet.handlers.appservice.registry import AppServices
from hamlet.handlers.appservice.transactions import AppServiceTransactions, Ephemeral
from hamlet.handlers.common.service import BuildContext, ServiceBase
from hamlet.handlers.container import Services
from hamlet.runtime.http_client import HttpClient
from hamlet.storage.stores.appservice import AppServiceStore


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
    s.app_service_http = ctx.own(_HttpClientService(HttpClient())).client
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
        receipts=lambda room_id, at: _receipt_event(s, room_id, at),
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


async def _receipt_event(s: Services, room_id: str, at: int) -> dict[str, Any] | None:
    updates = await s.receipts.get_updates("", [room_id], at - 1, at)
    room = updates.get(room_id)
    if room is None:
        return None
    return {"type": "m.receipt", "room_id": room_id, "content": room.content()}
