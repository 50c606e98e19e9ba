"""Synapse's federation admin API over the sender's tables: destinations,
their rooms, and resetting a destination's backoff."""

from __future__ import annotations

from typing import Any

from hamlet.handlers.common.errors import InvalidParamError, NotFoundError
from hamlet.handlers.federation.sender.sender import FederationSender
from hamlet.storage.stores.federation_outbox import (
    DESTINATION_ORDERS,
    DestinationRow,
    FederationOutboxStore,
)

MAX_PAGE = 1000


def _destination_json(row: DestinationRow) -> dict[str, Any]:
    return {
        "destination": row.destination,
        "retry_last_ts": row.retry_last_ts,
        "retry_interval": row.retry_interval,
        "failure_ts": row.failure_ts,
        "last_successful_stream_ordering": row.last_successful_stream_ordering,
    }


def _page(body: dict[str, Any], start: int, count: int, total: int) -> dict[str, Any]:
    if start + count < total:
        body["next_token"] = str(start + count)
    body["total"] = total
    return body


class DestinationsAdmin:
    def __init__(self, store: FederationOutboxStore, sender: FederationSender) -> None:
        self._store = store
        self._sender = sender

    async def list_destinations(
        self, start: int, limit: int, order_by: str, backwards: bool, search: str | None
    ) -> dict[str, Any]:
        if order_by not in DESTINATION_ORDERS:
            raise InvalidParamError(f"Unknown value for order_by: {order_by}")
        rows, total = await self._store.list_destinations(
            start, min(limit, MAX_PAGE), order_by, backwards, search
        )
        body = {"destinations": [_destination_json(r) for r in rows]}
        return _page(body, start, len(rows), total)

    async def get_destination(self, destination: str) -> dict[str, Any]:
        row = await self._store.get_destination(destination)
        if row is None:
            raise NotFoundError("Unknown destination")
        return _destination_json(row)

    async def destination_rooms(
        self, destination: str, start: int, limit: int, backwards: bool
    ) -> dict[str, Any]:
        if await self._store.get_destination(destination) is None:
            raise NotFoundError("Unknown destination")
        rows, total = await self._store.list_destination_rooms(
            destination, start, min(limit, MAX_PAGE), backwards
        )
        body = {"rooms": [{"room_id": r, "stream_ordering": so} for r, so in rows]}
        return _page(body, start, len(rows), total)

    async def reset_connection(self, destination: str) -> None:
        await self._sender.reset_connection(destination)
