"""Builds the federation sender and its admin view (after user_streams: it
reads typing, receipts and presence), and hands it local users' device
changes and to-device messages for other servers."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.federation.sender.admin import DestinationsAdmin
from hamlet.handlers.federation.sender.device_edus import DeviceEdus
from hamlet.handlers.federation.sender.hosts import MembershipHosts
from hamlet.handlers.federation.sender.sender import FederationSender
from hamlet.handlers.federation.sender.transport import TransactionTransport
from hamlet.storage.stores.federation_outbox import FederationOutboxStore


def build(
    ctx: BuildContext,
    s: Services,
    transport: TransactionTransport | None = None,
    *,
    offline: bool = False,
) -> None:
    """Transactions go out through the tenant's federation client unless a
    test gives another `transport`; `offline`, queues fill (in the
    database) and wait until one is attached."""
    store = FederationOutboxStore(ctx.db)
    s.federation_sender = ctx.own(
        FederationSender(
            server_name=ctx.server_name,
            clock=ctx.clock,
            store=store,
            config=ctx.config.federation,
            max_in_flight=ctx.config.limits.max_concurrent_federation_transactions,
            notifier=s.notifier,
            hosts=MembershipHosts(ctx.server_name, store),
            events=s.events_store,
            event_stream=s.event_creator,
            typing=s.typing,
            receipts=s.receipts,
            presence=s.presence,
            user_rooms=s.rooms_store,
            transport=None if offline else transport or s.federation_client,
        )
    )
    s.federation_joins.membership_events.attach_relay(s.federation_sender)
    s.federation_destinations = DestinationsAdmin(store, s.federation_sender)
    device_edus = DeviceEdus(
        server_name=ctx.server_name,
        sender=s.federation_sender,
        keys=s.e2e_keys,
        positions=s.e2e_keys.store,
        sharing=s.rooms_store,
    )
    s.device_lists.attach_outbound(device_edus)
    s.to_device.attach_remote(device_edus)
    # Built before us: a room it deletes has its leaves sent before the purge.
    s.admin_rooms.set_outbox(s.federation_sender, ctx.config.federation.client_timeout / 1000)
