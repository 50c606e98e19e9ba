"""Builds the search service: full-text search over room events."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.search.handler import SearchHandler
from hamlet.storage.stores.search import SearchStore


def build(ctx: BuildContext, s: Services) -> None:
    creator = s.event_creator
    s.search = SearchHandler(
        store=SearchStore(ctx.db),
        history=s.room_history_store,
        rooms=s.rooms_store,
        state=s.room_state,
        cache=s.event_cache,
        visibility=s.visibility,
        pagination=s.pagination,
        serializer=s.event_serializer,
        current_stream=lambda: creator.current_stream,
    )
