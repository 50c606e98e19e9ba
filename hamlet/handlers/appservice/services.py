"""Builds the application services: the registry early (authentication,
registration and aliases consult it), the transaction sender and queries
once the rooms and history services exist."""

from __future__ import annotations

from collections.abc import Collection

from hamlet.handlers.appservice.queries import AppServiceQueries
from hamlet.handlers.appservice.registry import AppServices
from hamlet.handlers.appservice.transactions import AppServiceTransactions
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
    )
    ctx.own(_SenderUsers(s))
    s.app_service_transactions = ctx.own(transactions)
    if len(s.app_services) == 0:
        return

    def on_stream(stream: str, _pos: int, _users: Collection[str], _rooms: Collection[str]) -> None:
        if stream == "events":
            transactions.wake()

    s.notifier.add_listener(on_stream)
