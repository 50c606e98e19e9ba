"""Stored client filters: `POST/GET /user/{userId}/filter`."""

from __future__ import annotations

from typing import Any

from hamlet.core.errors import FilterError
from hamlet.core.filters import Filter, parse_filter
from hamlet.handlers.common.errors import BadJsonError, ForbiddenError, NotFoundError
from hamlet.handlers.common.service import ServiceBase
from hamlet.storage.stores.filters import FilterStore


class FilterHandler(ServiceBase):
    def __init__(self, server_name: str, store: FilterStore) -> None:
        self._server_name = server_name
        self._store = store

    def _check_user(self, requester: str, user_id: str) -> None:
        if requester != user_id:
            raise ForbiddenError("Cannot use filters of other users")

    async def create(self, requester: str, user_id: str, definition: Any) -> str:
        self._check_user(requester, user_id)
        try:
            parse_filter(definition)
        except FilterError as e:
            raise BadJsonError(str(e)) from None
        return str(await self._store.add_filter(user_id, definition))

    async def get_definition(self, requester: str, user_id: str, filter_id: str) -> Any:
        self._check_user(requester, user_id)
        try:
            number = int(filter_id)
        except ValueError:
            raise NotFoundError("No such filter") from None
        if number < 0 or number >= 2**63:
            raise NotFoundError("No such filter")
        definition = await self._store.get_filter(user_id, number)
        if definition is None:
            raise NotFoundError("No such filter")
        return definition

    async def get_filter(self, user_id: str, filter_id: str) -> Filter:
        """The parsed filter, for /sync?filter=<id>."""
        return parse_filter(await self.get_definition(user_id, user_id, filter_id))

    async def shutdown(self) -> None:
        """Stateless."""
