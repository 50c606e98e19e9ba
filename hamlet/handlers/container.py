"""Every service of one homeserver, by name, as the package builders fill them in.

The HomeServer is a `Services` (so the API layer reads `hs.sync`, `hs.auth`);
each package's `services.build(ctx, s)` sets its own attributes and reads
those of the packages built before it. A new package declares its
attributes here and adds its builder to the HomeServer's list.
"""

from __future__ import annotations

from hamlet.handlers.accounts.account import AccountHandler
from hamlet.handlers.accounts.auth import AuthHandler
from hamlet.handlers.accounts.deactivation import DeactivationHandler
from hamlet.handlers.accounts.devices import DeviceHandler
from hamlet.handlers.accounts.login import LoginHandler
from hamlet.handlers.accounts.openid import OpenIdHandler
from hamlet.handlers.accounts.passwords import PasswordHasher
from hamlet.handlers.accounts.profile import ProfileHandler
from hamlet.handlers.accounts.ratelimits import AccountRatelimiters
from hamlet.handlers.accounts.register import RegistrationHandler
from hamlet.handlers.accounts.shared_secret import SharedSecretRegistration
from hamlet.handlers.accounts.uia import UiaHandler
from hamlet.handlers.accounts.user_directory import UserDirectoryHandler
from hamlet.handlers.admin.event_reports import EventReportsHandler
from hamlet.handlers.admin.registration_tokens import RegistrationTokensAdmin
from hamlet.handlers.admin.rooms import AdminRoomsHandler
from hamlet.handlers.admin.server_notices import ServerNoticesHandler
from hamlet.handlers.admin.users import AdminUsersHandler
from hamlet.handlers.appservice.http import JsonHttpClient
from hamlet.handlers.appservice.queries import AppServiceQueries
from hamlet.handlers.appservice.registry import AppServices
from hamlet.handlers.appservice.transactions import AppServiceTransactions
from hamlet.handlers.common.memberships import MembershipCache
from hamlet.handlers.common.notifier import Notifier
from hamlet.handlers.common.ratelimit_overrides import RatelimitOverrides
from hamlet.handlers.common.request_slots import RequestSlots
from hamlet.handlers.e2ee.device_lists import DeviceListHandler
from hamlet.handlers.e2ee.key_backup import KeyBackupHandler
from hamlet.handlers.e2ee.keys import E2eKeysHandler
from hamlet.handlers.federation.client import FederationClient
from hamlet.handlers.federation.devices import RemoteDeviceLists
from hamlet.handlers.federation.discovery import ServerDiscovery
from hamlet.handlers.federation.hierarchy import FederationHierarchy
from hamlet.handlers.federation.invites import FederationInvites
from hamlet.handlers.federation.joins import FederationJoins
from hamlet.handlers.federation.keyring import Keyring
from hamlet.handlers.federation.knocks import FederationKnocks
from hamlet.handlers.federation.leaves import FederationLeaves
from hamlet.handlers.federation.notary import KeyNotary
from hamlet.handlers.federation.queries import FederationQueries
from hamlet.handlers.federation.ratelimit import FederationRateLimiter
from hamlet.handlers.federation.room_reads import FederationRoomReads
from hamlet.handlers.federation.sender.admin import DestinationsAdmin
from hamlet.handlers.federation.sender.sender import FederationSender
from hamlet.handlers.federation.server_acl import ServerAcls
from hamlet.handlers.federation.transactions import TransactionHandler
from hamlet.handlers.history.aggregations import BundledAggregations
from hamlet.handlers.history.pagination import PaginationHandler
from hamlet.handlers.history.reader import RoomReader
from hamlet.handlers.history.relations import RelationsHandler
from hamlet.handlers.history.serializer import EventSerializer
from hamlet.handlers.history.visibility import VisibilityHandler
from hamlet.handlers.media.repository import MediaRepository
from hamlet.handlers.push.actions import PushEvaluator
from hamlet.handlers.push.notifications import NotificationsHandler
from hamlet.handlers.push.pushers import PushersHandler
from hamlet.handlers.push.rules import PushRulesHandler
from hamlet.handlers.rooms.creation import RoomCreationHandler
from hamlet.handlers.rooms.directory import DirectoryHandler
from hamlet.handlers.rooms.event_cache import EventCache
from hamlet.handlers.rooms.event_creation import EventCreator
from hamlet.handlers.rooms.federated_events import FederatedEventHandler
from hamlet.handlers.rooms.membership import MembershipHandler
from hamlet.handlers.rooms.persistence import EventPersister
from hamlet.handlers.rooms.pipeline import EventPipeline
from hamlet.handlers.rooms.ratelimits import RoomRatelimiters
from hamlet.handlers.rooms.state import StateHandler
from hamlet.handlers.rooms.upgrade import RoomUpgradeHandler
from hamlet.handlers.search.handler import SearchHandler
from hamlet.handlers.sliding_sync.handler import SlidingSyncHandler
from hamlet.handlers.spaces.hierarchy import SpaceHierarchyHandler
from hamlet.handlers.sync.filters import FilterHandler
from hamlet.handlers.sync.handler import SyncHandler
from hamlet.handlers.user_streams.account_data import AccountDataHandler
from hamlet.handlers.user_streams.presence import PresenceHandler
from hamlet.handlers.user_streams.receipts import ReceiptsHandler
from hamlet.handlers.user_streams.to_device import ToDeviceHandler
from hamlet.handlers.user_streams.typing import TypingHandler
from hamlet.storage.stores.accounts import AccountStore
from hamlet.storage.stores.devices import DeviceStore
from hamlet.storage.stores.events import EventsStore
from hamlet.storage.stores.profiles import ProfilesStore
from hamlet.storage.stores.registration_tokens import RegistrationTokenStore
from hamlet.storage.stores.room_history import RoomHistoryStore
from hamlet.storage.stores.rooms import RoomsStore
from hamlet.storage.stores.user_directory import UserDirectoryStore


class Services:
    # common: the notifier, rate limit overrides and the stores several packages read.
    notifier: Notifier
    ratelimit_overrides: RatelimitOverrides
    request_slots: RequestSlots
    account_store: AccountStore
    device_store: DeviceStore
    events_store: EventsStore
    rooms_store: RoomsStore
    memberships: MembershipCache
    profiles_store: ProfilesStore
    room_history_store: RoomHistoryStore
    user_directory_store: UserDirectoryStore
    # appservice: registrations (built early), then queries and event push.
    app_services: AppServices
    app_service_http: JsonHttpClient
    app_service_queries: AppServiceQueries
    app_service_transactions: AppServiceTransactions
    # e2ee: keys, the device list stream, key backup.
    device_lists: DeviceListHandler
    e2e_keys: E2eKeysHandler
    key_backup: KeyBackupHandler
    # rooms: events, state, membership and the room directory.
    event_cache: EventCache
    room_state: StateHandler
    event_persister: EventPersister
    event_creator: EventCreator
    federated_events: FederatedEventHandler
    membership: MembershipHandler
    room_ratelimits: RoomRatelimiters
    directory: DirectoryHandler
    room_creation: RoomCreationHandler
    room_upgrade: RoomUpgradeHandler
    event_pipeline: EventPipeline
    # accounts: users, devices, tokens, login, registration, profiles.
    registration_token_store: RegistrationTokenStore
    password_hasher: PasswordHasher
    account_ratelimiters: AccountRatelimiters
    auth: AuthHandler
    devices: DeviceHandler
    login: LoginHandler
    openid: OpenIdHandler
    uia: UiaHandler
    registration: RegistrationHandler
    account: AccountHandler
    shared_secret_registration: SharedSecretRegistration
    profile: ProfileHandler
    user_directory: UserDirectoryHandler
    # history: what a user may see, served, paginated and with relations.
    visibility: VisibilityHandler
    room_reader: RoomReader
    aggregations: BundledAggregations
    event_serializer: EventSerializer
    pagination: PaginationHandler
    relations: RelationsHandler
    # search: full-text search over room events.
    search: SearchHandler
    # user_streams: what /sync reads besides rooms.
    typing: TypingHandler
    account_data: AccountDataHandler
    receipts: ReceiptsHandler
    presence: PresenceHandler
    to_device: ToDeviceHandler
    # push: rules, their evaluation of new events, pushers, /notifications
    push_rules: PushRulesHandler
    push_evaluator: PushEvaluator
    pushers: PushersHandler
    notifications: NotificationsHandler
    # sync
    filters: FilterHandler
    sync: SyncHandler
    sliding_sync: SlidingSyncHandler
    # spaces
    spaces: SpaceHierarchyHandler
    # admin
    admin_rooms: AdminRoomsHandler
    registration_token_admin: RegistrationTokensAdmin
    deactivation: DeactivationHandler
    admin_users: AdminUsersHandler
    event_reports: EventReportsHandler
    server_notices: ServerNoticesHandler
    # media
    media: MediaRepository
    # federation transport: where servers are and signed requests to them.
    server_discovery: ServerDiscovery
    federation_client: FederationClient
    # federation: other servers' keys, and the notary serving them
    keyring: Keyring
    key_notary: KeyNotary
    federation_room_reads: FederationRoomReads
    federation_joins: FederationJoins
    federation_knocks: FederationKnocks
    federation_invites: FederationInvites
    federation_leaves: FederationLeaves
    # federation: what other servers send and ask us, and what we ask them.
    federation_transactions: TransactionHandler
    federation_ratelimiter: FederationRateLimiter
    server_acls: ServerAcls
    federation_queries: FederationQueries
    remote_device_lists: RemoteDeviceLists
    federation_hierarchy: FederationHierarchy
    # federation: the outbound queues and their admin view.
    federation_sender: FederationSender
    federation_destinations: DestinationsAdmin
