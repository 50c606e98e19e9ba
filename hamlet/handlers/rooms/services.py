"""Builds the rooms services: events, state, membership and the room directory."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.rooms.creation import RoomCreationHandler
from hamlet.handlers.rooms.directory import DirectoryHandler
from hamlet.handlers.rooms.directory_rules import DirectoryRuleSets
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.event_creation import EventCreator
from hamlet.handlers.rooms.federated_events import FederatedEventHandler
from hamlet.handlers.rooms.membership import MembershipHandler
from hamlet.handlers.rooms.persistence import EventPersister
from hamlet.handlers.rooms.pipeline import EventPipeline
from hamlet.handlers.rooms.ratelimits import RoomRatelimiters
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.rooms.upgrade import RoomUpgradeHandler


def build(ctx: BuildContext, s: Services) -> None:
    server_name = ctx.server_name
    s.event_cache = ctx.own(EventCache(s.events_store))
    s.room_state = ctx.own(StateHandler(s.events_store, s.rooms_store, s.event_cache))
    s.event_persister = ctx.own(
        EventPersister(
            events=s.events_store,
            rooms=s.rooms_store,
            state=s.room_state,
            cache=s.event_cache,
            notifier=s.notifier,
        )
    )
    s.event_creator = EventCreator(
        server_name=server_name,
        clock=ctx.clock,
        signing_key=ctx.signing_key,
        persister=s.event_persister,
        events=s.events_store,
        state=s.room_state,
        cache=s.event_cache,
    )
    s.federated_events = FederatedEventHandler(
        persister=s.event_persister,
        events=s.events_store,
        state=s.room_state,
        cache=s.event_cache,
    )
    s.membership = MembershipHandler(
        server_name=server_name,
        creator=s.event_creator,
        state=s.room_state,
        rooms=s.rooms_store,
        profiles=s.profiles_store,
        app_service_queries=s.app_service_queries,
    )
    s.room_ratelimits = ctx.own(RoomRatelimiters(ctx.clock, ctx.config, s.ratelimit_overrides))
    rules = DirectoryRuleSets.from_config(
        ctx.config.alias_creation_rules, ctx.config.room_list_publication_rules
    )
    s.room_creation = RoomCreationHandler(
        server_name=server_name,
        rules=rules,
        default_room_version=ctx.config.default_room_version,
        creator=s.event_creator,
        membership=s.membership,
        rooms=s.rooms_store,
        app_services=s.app_services,
    )
    s.room_upgrade = RoomUpgradeHandler(
        server_name=server_name,
        creator=s.event_creator,
        membership=s.membership,
        state=s.room_state,
        rooms=s.rooms_store,
        events=s.events_store,
    )
    s.event_pipeline = EventPipeline(
        server_name=server_name,
        creator=s.event_creator,
        membership=s.membership,
        state=s.room_state,
        creation=s.room_creation,
        upgrade=s.room_upgrade,
        ratelimits=s.room_ratelimits,
    )
    s.directory = DirectoryHandler(
        server_name=server_name,
        rules=rules,
        rooms=s.rooms_store,
        state=s.room_state,
        pipeline=s.event_pipeline,
        counts=s.user_directory_store,
        app_services=s.app_services,
        app_service_queries=s.app_service_queries,
    )
