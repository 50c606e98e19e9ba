"""Builds the push services: push rules."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.push.rules import PushRulesHandler
from hamlet.storage.stores.push_rules import PushRulesStore


def build(ctx: BuildContext, s: Services) -> None:
    s.push_rules = ctx.own(
        PushRulesHandler(
            store=PushRulesStore(ctx.db),
            account_data=s.account_data,
            history=s.room_history_store,
            state=s.room_state,
            clock=ctx.clock,
        )
    )
