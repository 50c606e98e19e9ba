"""Builds the push services: push rules, their evaluation of new events, the
HTTP pushers delivering to push gateways, and /notifications."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.push.actions import PushEvaluator
from hamlet.handlers.push.gateway import GatewayClient, HttpGatewayClient
from hamlet.handlers.push.notifications import NotificationsHandler
from hamlet.handlers.push.pushers import PushersHandler
from hamlet.handlers.push.rules import PushRulesHandler
from hamlet.runtime.http_client import IpRangeFilter
from hamlet.storage.stores.push_rules import PushRulesStore
from hamlet.storage.stores.pushers import PushersStore


def build(ctx: BuildContext, s: Services, gateway: GatewayClient | None = None) -> None:
    """`gateway`: what notifications are POSTed through (by default the
    process's HTTP client, honouring `ip_range_blacklist` / `ip_range_whitelist`)."""
    s.push_rules = ctx.own(
        PushRulesHandler(
            store=PushRulesStore(ctx.db),
            account_data=s.account_data,
            history=s.room_history_store,
            state=s.room_state,
            clock=ctx.clock,
        )
    )
    store = PushersStore(ctx.db)
    s.push_evaluator = ctx.own(
        PushEvaluator(
            server_name=ctx.server_name,
            clock=ctx.clock,
            notifier=s.notifier,
            store=store,
            rules=s.push_rules,
            events=s.room_history_store,
            members=s.rooms_store,
            event_stream=s.event_creator,
        )
    )
    if gateway is None:
        ip_filter = IpRangeFilter.parse(
            ctx.config.ip_range_blacklist, ctx.config.ip_range_whitelist
        )
        gateway = HttpGatewayClient(ctx.http_client, ctx.clock, ip_filter)
    s.pushers = ctx.own(
        PushersHandler(
            clock=ctx.clock,
            store=store,
            config=ctx.config.push,
            gateway=gateway,
            evaluator=s.push_evaluator,
            events=s.events_store,
            state=s.room_state,
            joined_rooms=s.rooms_store,
            event_stream_position=s.event_creator,
            notifier=s.notifier,
            receipts=s.receipts,
        )
    )
    s.notifications = NotificationsHandler(
        store=store,
        events=s.events_store,
        visibility=s.visibility,
        serializer=s.event_serializer,
    )
