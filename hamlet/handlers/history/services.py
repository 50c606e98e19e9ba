"""Builds the history services: visibility, serving events, pagination, relations."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.history.aggregations import BundledAggregations
from hamlet.handlers.history.pagination import PaginationHandler
from hamlet.handlers.history.reader import RoomReader
from hamlet.handlers.history.relations import RelationsHandler
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler


def build(ctx: BuildContext, s: Services) -> None:
    s.visibility = VisibilityHandler(s.room_state, s.rooms_store)
    s.room_reader = RoomReader(
        state=s.room_state, rooms=s.rooms_store, cache=s.event_cache, visibility=s.visibility
    )
    # Bundled aggregations serve edits and thread heads, and the serializer
    # bundles aggregations: the aggregator gets a serializer of its own that
    # never bundles (serializers are stateless), so neither waits for the other.
    s.aggregations = BundledAggregations(
        history=s.room_history_store,
        cache=s.event_cache,
        visibility=s.visibility,
        serializer=EventSerializer(ctx.clock, s.event_cache, s.events_store),
    )
    s.event_serializer = EventSerializer(
        ctx.clock, s.event_cache, s.events_store, aggregator=s.aggregations.aggregate
    )
    creator = s.event_creator
    s.pagination = PaginationHandler(
        history=s.room_history_store,
        rooms=s.rooms_store,
        state=s.room_state,
        cache=s.event_cache,
        visibility=s.visibility,
        serializer=s.event_serializer,
        current_stream=lambda: creator.current_stream,
    )
    s.relations = RelationsHandler(
        history=s.room_history_store,
        cache=s.event_cache,
        visibility=s.visibility,
        serializer=s.event_serializer,
        pagination=s.pagination,
    )
