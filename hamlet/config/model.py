"""Typed, immutable configuration objects.

Key names follow Synapse's so a Synapse ``homeserver.yaml`` carries over.
Build these through :func:`hamlet.config.validate_config` (or
:func:`hamlet.config.load_config`); the constructors do no validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from hamlet.config.appservice import AppServiceConfig
from hamlet.core.server_keys import OldKey

DatabaseEngine = Literal["sqlite3", "psycopg2"]

DEFAULT_SQLITE_CP = 1
DEFAULT_PG_CP_MIN = 5
DEFAULT_PG_CP_MAX = 10
DEFAULT_PG_SCHEMA = "public"


@dataclass(frozen=True, slots=True)
class ResourceConfig:
    """One entry of a listener's ``resources`` list."""

    names: tuple[str, ...]
    compress: bool = False


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """One entry of ``listeners``. Unlike Synapse, binds to loopback by default."""

    port: int
    bind_addresses: tuple[str, ...] = ("127.0.0.1",)
    type: str = "http"
    tls: bool = False
    x_forwarded: bool = False
    resources: tuple[ResourceConfig, ...] = ()


def _empty_mapping() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    """The ``database`` section.

    ``name`` uses Synapse's engine names: ``sqlite3`` or ``psycopg2``
    (PostgreSQL, which Hamlet reaches through asyncpg). ``args`` holds the
    validated, normalised arguments: for sqlite3 ``database`` is already
    resolved against the config directory; for psycopg2 ``dbname`` is
    folded into ``database``.
    """

    name: DatabaseEngine
    args: Mapping[str, Any] = field(default_factory=_empty_mapping)
    txn_limit: int = 0

    @property
    def is_sqlite(self) -> bool:
        return self.name == "sqlite3"

    @property
    def is_postgres(self) -> bool:
        return self.name == "psycopg2"

    def sqlite_path(self) -> str:
        """The SQLite database file (absolute), or ``":memory:"``."""
        if not self.is_sqlite:
            raise ValueError(f"database engine is {self.name}, not sqlite3")
        return str(self.args["database"])

    def pg_dsn_kwargs(self) -> dict[str, Any]:
        """Connection keywords (host, port, user, password, database) that are set."""
        if not self.is_postgres:
            raise ValueError(f"database engine is {self.name}, not psycopg2")
        keys = ("host", "port", "user", "password", "database")
        return {k: self.args[k] for k in keys if self.args.get(k) is not None}

    @property
    def pg_schema(self) -> str:
        """The PostgreSQL schema holding this tenant's tables."""
        return str(self.args.get("schema", DEFAULT_PG_SCHEMA))

    @property
    def cp_min(self) -> int:
        default = DEFAULT_SQLITE_CP if self.is_sqlite else DEFAULT_PG_CP_MIN
        return int(self.args.get("cp_min", default))

    @property
    def cp_max(self) -> int:
        default = DEFAULT_SQLITE_CP if self.is_sqlite else DEFAULT_PG_CP_MAX
        return int(self.args.get("cp_max", default))


@dataclass(frozen=True, slots=True)
class PasswordConfig:
    """``password_config``.

    ``minimum_length`` and the ``require_*`` flags come from
    ``password_config.policy`` and are already zero/False when the policy is
    not enabled, so callers can apply them unconditionally.
    """

    enabled: bool = True
    pepper: str = ""
    minimum_length: int = 0
    localdb_enabled: bool = True
    only_for_reauth: bool = False
    require_digit: bool = False
    require_symbol: bool = False
    require_lowercase: bool = False
    require_uppercase: bool = False


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """A token bucket: ``burst_count`` actions, refilled at ``per_second``.

    ``per_second: 0`` means the action is never allowed once the burst is used.
    """

    per_second: float
    burst_count: float


@dataclass(frozen=True, slots=True)
class LoginRateLimits:
    """``rc_login``."""

    address: RateLimitConfig = RateLimitConfig(0.003, 5)
    account: RateLimitConfig = RateLimitConfig(0.003, 5)
    failed_attempts: RateLimitConfig = RateLimitConfig(0.17, 3)


@dataclass(frozen=True, slots=True)
class DirectoryRule:
    """One of ``alias_creation_rules`` / ``room_list_publication_rules``: the
    first rule whose globs match decides; no match means deny (Synapse's)."""

    action: str
    user_id: str = "*"
    room_id: str = "*"
    alias: str = "*"


@dataclass(frozen=True, slots=True)
class JoinRateLimits:
    """``rc_joins``."""

    local: RateLimitConfig = RateLimitConfig(0.1, 10)
    remote: RateLimitConfig = RateLimitConfig(0.01, 10)


@dataclass(frozen=True, slots=True)
class InviteRateLimits:
    """``rc_invites``."""

    per_room: RateLimitConfig = RateLimitConfig(0.3, 10)
    per_user: RateLimitConfig = RateLimitConfig(0.003, 5)
    per_issuer: RateLimitConfig = RateLimitConfig(0.3, 10)


@dataclass(frozen=True, slots=True)
class UserDirectoryConfig:
    """``user_directory``."""

    enabled: bool = True
    search_all_users: bool = False
    prefer_local_users: bool = False


@dataclass(frozen=True, slots=True)
class PresenceConfig:
    """``presence``."""

    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FederationConfig:
    """``federation`` (Synapse's keys; durations in milliseconds).

    A request is tried again after network failures: ``max_long_retries``
    times (delays growing up to ``max_long_retry_delay``) for transactions,
    ``max_short_retries`` times (up to ``max_short_retry_delay``) for the
    rest; each attempt times out after ``client_timeout``. A destination
    that still fails is backed off: first ``destination_min_retry_interval``,
    then that times ``destination_retry_multiplier`` after each failure, up to
    ``destination_max_retry_interval``; the backoff is stored per destination.
    """

    client_timeout: int = 60_000
    max_short_retry_delay: int = 2_000
    max_long_retry_delay: int = 60_000
    max_short_retries: int = 3
    max_long_retries: int = 10
    destination_min_retry_interval: int = 10 * 60_000
    destination_retry_multiplier: float = 2.0
    destination_max_retry_interval: int = 7 * 24 * 3600_000


# Synapse's DEFAULT_IP_RANGE_BLACKLIST: loopback, private, link-local, shared,
# documentation, benchmarking and multicast ranges.
DEFAULT_IP_RANGE_BLACKLIST: tuple[str, ...] = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
)


@dataclass(frozen=True, slots=True)
class PushConfig:
    """``push`` (Synapse's keys) and Hamlet's ``max_pushers_per_user``.

    ``enabled: false`` stops deliveries to push gateways (pushers can still
    be set, and /notifications still fills); ``include_content: false``
    leaves event content out of what gateways get;
    ``group_unread_count_by_room: false`` makes the badge count
    notifications rather than rooms with notifications.
    """

    enabled: bool = True
    include_content: bool = True
    group_unread_count_by_room: bool = True
    max_pushers_per_user: int = 100


@dataclass(frozen=True, slots=True)
class FederationRateLimitConfig:
    """``rc_federation`` (Synapse's keys), applied per origin server.

    Requests from one origin beyond ``sleep_limit`` within ``window_size``
    ms wait ``sleep_delay`` ms; more than ``reject_limit`` waiting are
    refused (429); at most ``concurrent`` are processed at once.
    """

    window_size: int = 1000
    sleep_limit: int = 10
    sleep_delay: int = 500
    reject_limit: int = 50
    concurrent: int = 3


@dataclass(frozen=True, slots=True)
class ServerNoticesConfig:
    """``server_notices`` (absent means server notices are off)."""

    system_mxid_localpart: str
    system_mxid_display_name: str | None = None
    system_mxid_avatar_url: str | None = None
    room_name: str = "Server Notices"
    auto_join: bool = False


DEFAULT_SYNCS_PER_USER = 10


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """``limits`` (Hamlet's own): per-tenant caps; ``None`` means no cap.

    The ``max_to_device_*`` caps bound what one user can make another store
    and receive: a message's content (bytes of JSON), the messages of one
    ``/sendToDevice`` (after ``*`` is expanded), the undelivered messages one
    sender may have queued for one device (its oldest go first) and that one
    device may hold in all (new ones are dropped), and the bytes of messages
    one ``/sync`` carries (at least one message, so a client always moves on).

    Per user: ``max_devices_per_user`` (a new device beyond it retires the
    least recently used ones), ``max_one_time_keys_per_algorithm`` stored per
    device, ``max_account_data_size`` (bytes of JSON per entry, tags
    included), ``max_account_data_entries`` (global and room entries),
    ``max_account_data_total_size`` (characters of JSON of all entries but
    ``m.push_rules``) and ``max_status_msg_length`` (characters of a presence
    ``status_msg``). ``max_account_data_sync_bytes`` is the account data one
    ``/sync`` carries (at least one entry; the rest comes in the next).
    ``max_concurrent_password_hashes`` bounds the bcrypt runs of the tenant
    at once on the blocking pool all tenants share.

    HTTP connections (read from the main config only; they guard the whole
    process): ``http_keepalive_timeout_ms`` closes an idle connection,
    ``http_header_timeout_ms`` one that has not sent a complete request head
    (slowloris); ``max_connections_per_ip`` and ``max_connections`` (``None``:
    three quarters of the open-file limit) cap open connections.

    ``max_concurrent_requests`` caps the tenant's requests in progress (a
    /sync only while it builds its answer, not while it long-polls); the
    excess waits in a queue of ``max_queued_requests`` (``None``: 32 per
    slot), beyond it gets 429.

    ``max_concurrent_federation_requests`` caps the tenant's outbound
    federation requests (the rest wait, within their timeout), so a tenant
    talking to unreachable servers cannot hold every pooled connection.
    """

    max_concurrent_requests: int | None = None
    max_queued_requests: int | None = None
    max_users: int | None = None
    max_media_bytes: int | None = None
    #: Distinct /sync requests one user may have in flight (identical ones share one).
    max_concurrent_syncs_per_user: int = DEFAULT_SYNCS_PER_USER
    #: Of those, how many build their response at once; and of the tenant's syncs.
    max_concurrent_sync_builds_per_user: int = 2
    max_concurrent_sync_builds: int = 8
    max_to_device_message_size: int = 64 * 1024
    max_to_device_messages_per_request: int = 1000
    max_to_device_queue_per_sender: int = 1000
    max_to_device_queue_per_device: int = 10_000
    max_to_device_sync_bytes: int = 1024 * 1024
    max_devices_per_user: int = 500
    max_one_time_keys_per_algorithm: int = 1000
    max_account_data_size: int = 64 * 1024
    max_account_data_entries: int = 10_000
    max_account_data_total_size: int = 4 * 1024 * 1024
    max_account_data_sync_bytes: int = 1024 * 1024
    max_status_msg_length: int = 1024
    max_concurrent_password_hashes: int = 1
    #: Federation transactions the tenant has in flight at once, all destinations together.
    max_concurrent_federation_transactions: int = 10
    http_keepalive_timeout_ms: int = 75_000
    http_header_timeout_ms: int = 30_000
    max_connections_per_ip: int = 200
    max_connections: int | None = None
    #: Outbound federation requests the tenant may have in flight at once.
    max_concurrent_federation_requests: int = 50


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """``opentracing`` (Synapse's section; main config only), exported over OTLP/HTTP.

    ``homeserver_whitelist``: regular expressions a tenant's server_name
    must match in full for its requests and jobs to be traced (None:
    every tenant). ``sample_rate``: the share of traces recorded.
    """

    enabled: bool = False
    sample_rate: float = 1.0
    homeserver_whitelist: tuple[str, ...] | None = None
    otlp_endpoint: str = "http://localhost:4318/v1/traces"
    service_name: str = "hamlet"


@dataclass(frozen=True, slots=True)
class HostConfig:
    """``host`` (Hamlet's own, main config only): the multi-tenant host.

    ``control_port`` opens the control API (provisioning, /metrics) on
    ``control_bind_address``, guarded by ``control_secret``. Tenants added
    at runtime live under ``tenants_dir``; ``tenant_database`` says where
    their data goes (``None``: an SQLite file each; ``psycopg2``: one
    database, a schema each, one shared pool). A tenant idle for
    ``hibernate_after_ms`` (0: never) is hibernated.
    """

    tenants_dir: Path
    control_port: int | None = None
    control_bind_address: str = "127.0.0.1"
    control_secret: str | None = None
    hibernate_after_ms: int = 0
    tenant_database: DatabaseConfig | None = None
    drain_timeout_ms: int = 10_000


@dataclass(frozen=True, slots=True)
class TrustedKeyServer:
    """One entry of ``trusted_key_servers``: a notary asked for other servers' keys.

    ``verify_keys`` (key ID, unpadded base64) check the notary's signature on
    what it vouches for; when absent the notary's own keys are fetched from it.
    """

    server_name: str
    verify_keys: tuple[tuple[str, str], ...] | None = None


DEFAULT_LISTENERS: tuple[ListenerConfig, ...] = (
    ListenerConfig(port=8008, resources=(ResourceConfig(names=("client",)),)),
)
DEFAULT_RC_MESSAGE = RateLimitConfig(0.2, 10)
DEFAULT_RC_REGISTRATION = RateLimitConfig(0.17, 3)
DEFAULT_RC_REGISTRATION_TOKEN_VALIDITY = RateLimitConfig(0.1, 5)
DEFAULT_RC_JOINS_PER_ROOM = RateLimitConfig(1, 10)
DEFAULT_RC_MEDIA_CREATE = RateLimitConfig(10, 50)
DEFAULT_RC_ADMIN_REDACTION = RateLimitConfig(1, 50)  # used when the section is present
DEFAULT_RC_KEY_REQUESTS = RateLimitConfig(20, 100)
# Counted in messages: a room key shared with a large room is one burst.
DEFAULT_RC_TO_DEVICE = RateLimitConfig(50, 2000)
DEFAULT_RC_ROOM_CREATION = RateLimitConfig(0.016, 10)
DEFAULT_RC_PRESENCE_PER_USER = RateLimitConfig(0.1, 1)
DEFAULT_RC_PROFILE = RateLimitConfig(1, 500)

DEFAULT_MAX_UPLOAD_SIZE = 50 * 1024 * 1024
DEFAULT_MAX_REQUEST_BODY_SIZE = 10 * 1024 * 1024
DEFAULT_ROOM_VERSION = "10"
DEFAULT_KEY_REFRESH_INTERVAL_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class FederationTransportConfig:
    """Outbound federation and the federation listener (Synapse's top-level keys).

    ``federation_verify_certificates``; the ranges federation may connect
    to: ``ip_range_blacklist`` / ``ip_range_whitelist``, unless
    ``federation_ip_range_blacklist`` is set, which then replaces both, as in
    Synapse (``0.0.0.0`` and ``::`` are refused whatever the lists say);
    ``serve_server_wellknown`` and the TLS files of ``tls: true`` listeners.
    """

    verify_certificates: bool = True
    federation_ip_range_blacklist: tuple[str, ...] = DEFAULT_IP_RANGE_BLACKLIST
    federation_ip_range_whitelist: tuple[str, ...] = ()
    serve_server_wellknown: bool = False
    tls_certificate_path: Path | None = None
    tls_private_key_path: Path | None = None


#: Synapse's default for `caches.sync_response_cache_duration`.
DEFAULT_SYNC_RESPONSE_CACHE_DURATION_MS = 2 * 60 * 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class HomeServerConfig:
    """One homeserver (one ``server_name``).

    Every path is absolute (relative ones in the YAML were resolved against
    ``config_dir``). ``config_path`` is the file it came from, if any.
    """

    server_name: str
    config_dir: Path
    public_baseurl: str
    signing_key_path: Path
    media_store_path: Path
    database: DatabaseConfig
    config_path: Path | None = None

    listeners: tuple[ListenerConfig, ...] = DEFAULT_LISTENERS
    log_config: Path | None = None
    #: Where `hamlet serve --daemonize` writes the daemon's process ID.
    pid_file: Path | None = None
    opentracing: TracingConfig = TracingConfig()

    # Registration and login
    enable_registration: bool = False
    enable_registration_without_verification: bool = False
    registration_requires_token: bool = False
    registration_shared_secret: str | None = None
    allow_guest_access: bool = False
    inhibit_user_in_use_error: bool = False
    password_config: PasswordConfig = PasswordConfig()
    bcrypt_rounds: int = 12
    session_lifetime: int | None = None  # milliseconds
    auto_join_rooms: tuple[str, ...] = ()
    autocreate_auto_join_rooms: bool = True
    auto_join_rooms_for_guests: bool = True

    # Rate limits
    rc_message: RateLimitConfig = DEFAULT_RC_MESSAGE
    rc_registration: RateLimitConfig = DEFAULT_RC_REGISTRATION
    rc_registration_token_validity: RateLimitConfig = DEFAULT_RC_REGISTRATION_TOKEN_VALIDITY
    rc_login: LoginRateLimits = LoginRateLimits()
    rc_joins: JoinRateLimits = JoinRateLimits()
    rc_joins_per_room: RateLimitConfig = DEFAULT_RC_JOINS_PER_ROOM
    rc_invites: InviteRateLimits = InviteRateLimits()
    rc_media_create: RateLimitConfig = DEFAULT_RC_MEDIA_CREATE
    rc_admin_redaction: RateLimitConfig | None = None
    rc_key_requests: RateLimitConfig = DEFAULT_RC_KEY_REQUESTS
    rc_to_device: RateLimitConfig = DEFAULT_RC_TO_DEVICE
    #: Room creation and upgrades, on top of ``rc_message`` (Synapse 1.159+).
    rc_room_creation: RateLimitConfig = DEFAULT_RC_ROOM_CREATION
    #: ``rc_presence.per_user``: presence changes by PUT /presence or /sync's ``set_presence``.
    rc_presence_per_user: RateLimitConfig = DEFAULT_RC_PRESENCE_PER_USER
    #: Profile lookups, per user (or per address when unauthenticated).
    rc_profile: RateLimitConfig = DEFAULT_RC_PROFILE
    alias_creation_rules: tuple[DirectoryRule, ...] = (DirectoryRule("allow"),)
    room_list_publication_rules: tuple[DirectoryRule, ...] = (DirectoryRule("allow"),)

    # Sizes, in bytes
    max_upload_size: int = DEFAULT_MAX_UPLOAD_SIZE
    max_request_body_size: int = DEFAULT_MAX_REQUEST_BODY_SIZE

    # Profiles, directory, presence, rooms
    admin_contact: str | None = None
    require_auth_for_profile_requests: bool = False
    limit_profile_requests_to_users_who_share_rooms: bool = False
    enable_set_displayname: bool = True
    enable_set_avatar_url: bool = True
    user_directory: UserDirectoryConfig = UserDirectoryConfig()
    presence: PresenceConfig = PresenceConfig()
    default_room_version: str = DEFAULT_ROOM_VERSION
    server_notices: ServerNoticesConfig | None = None
    allow_public_rooms_without_auth: bool = False
    allow_public_rooms_over_federation: bool = False
    allow_profile_lookup_over_federation: bool = True
    federation: FederationConfig = FederationConfig()
    rc_federation: FederationRateLimitConfig = FederationRateLimitConfig()
    push: PushConfig = PushConfig()
    #: Where outbound requests to user-supplied URLs (push gateways) may not
    #: go, unless also in ``ip_range_whitelist``; Synapse's keys and defaults.
    ip_range_blacklist: tuple[str, ...] = DEFAULT_IP_RANGE_BLACKLIST
    ip_range_whitelist: tuple[str, ...] = ()

    # Federation: signing keys and who may talk to us
    #: Notaries asked for remote keys; empty (unlike Synapse's matrix.org): ask each origin.
    trusted_key_servers: tuple[TrustedKeyServer, ...] = ()
    old_signing_keys: tuple[OldKey, ...] = ()
    key_refresh_interval: int = DEFAULT_KEY_REFRESH_INTERVAL_MS  # milliseconds
    #: When set, only these servers are served over federation.
    federation_domain_whitelist: frozenset[str] | None = None
    federation_transport: FederationTransportConfig = FederationTransportConfig()

    # Application services (bridges): `app_service_config_files` and inline `app_services`
    app_services: tuple[AppServiceConfig, ...] = ()

    # `caches.sync_response_cache_duration` (Synapse's): how long the result of
    # a /sync that does not wait is kept for an identical request, while
    # nothing it depends on has moved (`handlers/sync/sharing.py`); 0: never.
    sync_response_cache_duration: int = DEFAULT_SYNC_RESPONSE_CACHE_DURATION_MS

    # Multi-tenancy (Hamlet's own keys)
    tenants: tuple[Path, ...] = ()
    limits: LimitsConfig = LimitsConfig()
    host: HostConfig | None = None
