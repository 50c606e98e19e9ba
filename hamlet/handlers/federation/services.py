"""Builds the federation services: the transport (discovery and the signing
client), the keyring and the key notary, inbound transactions and
`rc_federation`, the queries asked of other servers, and remote users'
device lists and keys (after user_streams and e2ee: transactions feed
typing, receipts, presence and to-device inboxes; local /keys/query and
/keys/claim ask other servers through `s.remote_device_lists`; after
spaces: client hierarchies reach remote rooms through it)."""

from __future__ import annotations

from typing import Protocol

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.federation.backfill import Backfiller
from hamlet.handlers.federation.client import FederationClient, federation_ip_filter
from hamlet.handlers.federation.devices import RemoteDeviceLists
from hamlet.handlers.federation.discovery import ServerDiscovery
from hamlet.handlers.federation.hierarchy import FederationHierarchy
from hamlet.handlers.federation.inbound_edus import InboundEdus
from hamlet.handlers.federation.inbound_pdus import InboundPdus
from hamlet.handlers.federation.invites import FederationInvites
from hamlet.handlers.federation.joins import FederationJoins
from hamlet.handlers.federation.keyring import Keyring
from hamlet.handlers.federation.knocks import FederationKnocks
from hamlet.handlers.federation.leaves import FederationLeaves
from hamlet.handlers.federation.membership_events import JoinTransport, MembershipEvents
from hamlet.handlers.federation.missing_events import GapFiller
from hamlet.handlers.federation.notary import KeyNotary
from hamlet.handlers.federation.queries import FederationQueries
from hamlet.handlers.federation.ratelimit import FederationRateLimiter
from hamlet.handlers.federation.remote_events import FetchTransport, RemoteEvents
from hamlet.handlers.federation.room_reads import FederationRoomReads
from hamlet.handlers.federation.server_acl import ServerAcls
from hamlet.handlers.federation.srv import DnsSrvResolver
from hamlet.handlers.federation.transactions import TransactionHandler
from hamlet.storage.stores.dag_gaps import DagGapsStore
from hamlet.storage.stores.received_transactions import ReceivedTransactionsStore
from hamlet.storage.stores.remote_devices import RemoteDevicesStore
from hamlet.storage.stores.server_keys import ServerKeyStore


class Transport(JoinTransport, FetchTransport, Protocol):
    """Everything the federation services ask of the federation client."""


def build_transport(ctx: BuildContext, s: Services) -> None:
    """Built first: every federation service after it sends through `s.federation_client`."""
    transport = ctx.config.federation_transport
    s.server_discovery = ctx.own(
        ServerDiscovery(
            ctx.http_client,
            DnsSrvResolver(),
            ctx.clock,
            ip_filter=federation_ip_filter(transport),
            verify_tls=transport.verify_certificates,
        )
    )
    s.federation_client = FederationClient(
        server_name=ctx.server_name,
        signing_key=ctx.signing_key,
        http=ctx.http_client,
        discovery=s.server_discovery,
        clock=ctx.clock,
        transport=transport,
        domain_whitelist=ctx.config.federation_domain_whitelist,
        client_timeout_ms=ctx.config.federation.client_timeout,
        max_concurrent=ctx.config.limits.max_concurrent_federation_requests,
    )


def build(ctx: BuildContext, s: Services, transport: Transport | None = None) -> None:
    """`transport` is what the keyring fetches with and queries of other
    servers go out through: the tenant's federation client unless a test
    gives another."""
    client = transport if transport is not None else s.federation_client
    s.keyring = ctx.own(
        Keyring(
            config=ctx.config,
            clock=ctx.clock,
            signing_key=ctx.signing_key,
            store=ServerKeyStore(ctx.db),
            transport=client,
        )
    )
    s.key_notary = ctx.own(
        KeyNotary(
            server_name=ctx.server_name,
            clock=ctx.clock,
            signing_key=ctx.signing_key,
            keyring=s.keyring,
        )
    )
    s.federation_queries = ctx.own(FederationQueries(ctx.clock, client))
    s.federation_hierarchy = ctx.own(
        FederationHierarchy(server_name=ctx.server_name, clock=ctx.clock, transport=client)
    )
    s.spaces.attach_remote(s.federation_hierarchy)
    s.federation_ratelimiter = ctx.own(FederationRateLimiter(ctx.clock, ctx.config.rc_federation))
    s.remote_device_lists = ctx.own(
        RemoteDeviceLists(
            server_name=ctx.server_name,
            clock=ctx.clock,
            transport=client,
            store=RemoteDevicesStore(ctx.db),
            sharing=s.rooms_store,
            device_lists=s.device_lists,
        )
    )
    s.e2e_keys.attach_remote(s.remote_device_lists)
    s.server_acls = ctx.own(ServerAcls(state=s.room_state, rooms=s.rooms_store))
    edus = InboundEdus(
        server_name=ctx.server_name,
        membership=s.membership,
        sharing=s.rooms_store,
        typing=s.typing,
        receipts=s.receipts,
        presence=s.presence,
        devices=s.remote_device_lists,
        to_device=s.to_device,
    )
    remote = RemoteEvents(
        transport=client, signatures=s.keyring, events=s.events_store, federated=s.federated_events
    )
    gaps_store = DagGapsStore(ctx.db)
    gaps = GapFiller(
        clock=ctx.clock,
        remote=remote,
        events=s.events_store,
        gaps=gaps_store,
        persister=s.event_persister,
        federated=s.federated_events,
    )
    s.federation_transactions = ctx.own(
        TransactionHandler(
            ctx.clock,
            ReceivedTransactionsStore(ctx.db),
            InboundPdus(s.rooms_store, s.keyring, gaps),
            edus.handlers(),
            acls=s.server_acls,
        )
    )
    backfiller = ctx.own(
        Backfiller(
            server_name=ctx.server_name,
            clock=ctx.clock,
            remote=remote,
            gaps=gaps,
            gaps_store=gaps_store,
            events=s.events_store,
            rooms=s.rooms_store,
            persister=s.event_persister,
        )
    )
    s.pagination.set_backfill(backfiller.backfill)
    s.federation_room_reads = FederationRoomReads(
        server_name=ctx.server_name,
        clock=ctx.clock,
        events=s.events_store,
        rooms=s.rooms_store,
        state=s.room_state,
        persister=s.event_persister,
        acls=s.server_acls,
    )
    membership_events = MembershipEvents(
        server_name=ctx.server_name,
        signing_key=ctx.signing_key,
        clock=ctx.clock,
        rooms=s.rooms_store,
        state=s.room_state,
        persister=s.event_persister,
        federated=s.federated_events,
        signatures=s.keyring,
        transport=client,
    )
    s.federation_joins = FederationJoins(
        membership_events=membership_events,
        events=s.events_store,
        queries=s.federation_queries,
    )
    s.federation_knocks = FederationKnocks(membership_events=membership_events)
    s.federation_invites = FederationInvites(
        membership_events=membership_events,
        accounts=s.account_store,
        events=s.events_store,
        keyring=s.keyring,
    )
    s.event_creator.attach_remote_invites(s.federation_invites)
    s.federation_leaves = FederationLeaves(
        membership_events=membership_events, invites=s.federation_invites
    )
    s.membership.attach_remote_rejections(s.federation_leaves)
