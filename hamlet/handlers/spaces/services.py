"""Builds the spaces services: the space hierarchy."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.spaces.hierarchy import SpaceHierarchyHandler


def build(ctx: BuildContext, s: Services) -> None:
    s.spaces = SpaceHierarchyHandler(
        server_name=ctx.server_name,
        token_key=bytes(ctx.signing_key.nacl_key),
        rooms=s.rooms_store,
        state=s.room_state,
        cache=s.event_cache,
        restricted=s.membership.restricted,
    )
