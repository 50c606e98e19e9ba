"""Validating a raw YAML mapping into a :class:`HomeServerConfig`."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml

from hamlet.config import push, server_keys
from hamlet.config._reader import (
    Context,
    Invalid,
    Section,
    int_range,
    parse_duration_ms,
    to_non_empty_str,
    to_str,
)
from hamlet.config.appservice import app_services
from hamlet.config.errors import ConfigError
from hamlet.config.federation import federation_transport_config
from hamlet.config.model import (
    DEFAULT_LISTENERS,
    DEFAULT_MAX_REQUEST_BODY_SIZE,
    DEFAULT_MAX_UPLOAD_SIZE,
    DEFAULT_PG_CP_MAX,
    DEFAULT_PG_CP_MIN,
    DEFAULT_PG_SCHEMA,
    DEFAULT_RC_ADMIN_REDACTION,
    DEFAULT_RC_JOINS_PER_ROOM,
    DEFAULT_RC_KEY_REQUESTS,
    DEFAULT_RC_MEDIA_CREATE,
    DEFAULT_RC_MESSAGE,
    DEFAULT_RC_PRESENCE_PER_USER,
    DEFAULT_RC_PROFILE,
    DEFAULT_RC_REGISTRATION,
    DEFAULT_RC_REGISTRATION_TOKEN_VALIDITY,
    DEFAULT_RC_ROOM_CREATION,
    DEFAULT_RC_TO_DEVICE,
    DEFAULT_ROOM_VERSION,
    DEFAULT_SQLITE_CP,
    DEFAULT_SYNC_RESPONSE_CACHE_DURATION_MS,
    DEFAULT_SYNCS_PER_USER,
    DatabaseConfig,
    DatabaseEngine,
    DirectoryRule,
    FederationConfig,
    FederationRateLimitConfig,
    HomeServerConfig,
    HostConfig,
    InviteRateLimits,
    JoinRateLimits,
    LimitsConfig,
    ListenerConfig,
    LoginRateLimits,
    PasswordConfig,
    PresenceConfig,
    RateLimitConfig,
    ResourceConfig,
    ServerNoticesConfig,
    TracingConfig,
    UserDirectoryConfig,
)
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS

LISTENER_TYPES = ("http",)
# What every http listener serves, whatever its resources say.
SERVED_RESOURCES = frozenset({"client", "media", "health", "federation", "keys"})

# Used with fullmatch: `$` after re.match also matches before a final newline.
_DNS_LABEL_RE = re.compile(r"[A-Za-z0-9-]{1,63}")
_PG_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_ROOM_REF_RE = re.compile(r"[#!][^:]+:.+", re.DOTALL)
#: A server name names a data directory and ends every user ID: one file name at most.
MAX_SERVER_NAME_LENGTH = 255
#: Shorter control secrets are warned about (a guessable secret provisions tenants).
MIN_CONTROL_SECRET_LENGTH = 16

OPEN_REGISTRATION_ERROR = (
    "open registration without any verification is enabled: anyone can create "
    "accounts on this server, which spammers and abusers will find. Require a "
    "registration token (registration_requires_token: true), or, if you really "
    "want open registration, also set enable_registration_without_verification: true"
)


# -- public entry points ------------------------------------------------------


def load_config(path: Path) -> tuple[HomeServerConfig, list[str]]:
    """Read a YAML config file and validate it.

    Relative paths in the file are resolved against the file's directory.
    Raises :class:`ConfigError` if the file cannot be read or parsed, or is
    invalid; returns the config and a list of warnings.
    """
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: config file is not valid UTF-8: {e}") from e
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML: {e}") from e
    if raw is None:
        raise ConfigError(f"{path}: config file is empty")
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{path}: the top level of the config must be a mapping of keys to values, "
            f"not a {_yaml_type_name(raw)}"
        )
    config, warnings = validate_config(raw, config_dir=path.parent)
    return _with_path(config, path), warnings


def validate_config(
    raw: Mapping[str, Any], *, config_dir: Path
) -> tuple[HomeServerConfig, list[str]]:
    """Validate a raw config mapping and build the typed config.

    Raises :class:`ConfigError` listing every error found. Returns the config
    and a list of warnings (``unknown key 'foo.bar'``). Relative paths are
    resolved against ``config_dir``.
    """
    ctx = Context(Path(config_dir).absolute())
    config = _build(ctx, ctx.root(raw))
    ctx.finish()
    if ctx.errors or config is None:
        raise ConfigError(ctx.errors or ["invalid configuration"])
    return config, ctx.warnings


# -- validators for single values ---------------------------------------------


def validate_server_name(value: Any) -> str:
    """A Matrix server name: hostname, IPv4 or [IPv6] literal, optional :port."""
    name = to_non_empty_str(value)
    if len(name) > MAX_SERVER_NAME_LENGTH:
        raise Invalid(f"server name longer than {MAX_SERVER_NAME_LENGTH} characters")
    bad = Invalid(
        f"invalid server name {name!r} (expected a hostname or IP literal "
        "with an optional :port, e.g. example.com or example.com:8448)"
    )
    if name.startswith("["):
        end = name.find("]")
        if end == -1:
            raise bad
        host, rest = name[1:end], name[end + 1 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad from None
        port = rest[1:] if rest.startswith(":") else None
        if rest and port is None:
            raise bad
    else:
        host, sep, port_s = name.partition(":")
        port = port_s if sep else None
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise bad from None
        elif not all(_DNS_LABEL_RE.fullmatch(p) for p in host.split(".")):
            raise bad
    if port is not None and not (
        port.isascii() and port.isdigit() and len(port) <= 5 and 1 <= int(port) <= 65535
    ):
        raise bad
    return name


def server_name_host(server_name: str) -> str:
    """The host part of a server name (brackets removed from IPv6)."""
    if server_name.startswith("["):
        return server_name[1 : server_name.index("]")]
    return server_name.partition(":")[0]


def _to_base_url(value: Any) -> str:
    url = to_non_empty_str(value).strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Invalid(f"must be an http:// or https:// URL, not {url!r}")
    if parts.query or parts.fragment:
        raise Invalid("must not have a query string or fragment")
    return url if url.endswith("/") else url + "/"


def _to_room_version(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    version = to_str(value)
    # Only versions local users can create: the default is what createRoom uses.
    if version not in KNOWN_ROOM_VERSIONS:
        known = ", ".join(sorted(KNOWN_ROOM_VERSIONS, key=int))
        raise Invalid(f"room version {version!r} cannot be created here (creatable: {known})")
    return version


def _to_room_refs(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise Invalid("must be a list of room aliases or IDs")
    for i, v in enumerate(value):
        if not isinstance(v, str) or not _ROOM_REF_RE.fullmatch(v):
            raise Invalid(
                f"item {i}: {v!r} is not a room alias (#alias:server) or room ID (!id:server)"
            )
    return tuple(value)


def _yaml_type_name(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return type(value).__name__


def _with_path(config: HomeServerConfig, path: Path) -> HomeServerConfig:
    return dataclasses.replace(config, config_path=path)


# -- sections -----------------------------------------------------------------

# A year: longer backoffs or timeouts are typos, and timers must stay finite.
MAX_FEDERATION_DURATION_MS = 365 * 24 * 3600_000
#: A kept /sync result is as old as this at most (presence ages with it).
MAX_SYNC_RESPONSE_CACHE_DURATION_MS = 3600_000


def _build(ctx: Context, root: Section) -> HomeServerConfig | None:
    server_name = root.require("server_name", validate_server_name)
    # Later defaults depend on server_name; use a placeholder so the rest of
    # the config is still checked and all errors are reported together.
    name = server_name or "invalid.server.name"

    public_baseurl = root.get("public_baseurl", f"https://{name}/", _to_base_url)
    listeners = _listeners(root)
    database = _database(ctx, root)

    enable_registration = root.bool_("enable_registration", False)
    without_verification = root.bool_("enable_registration_without_verification", False)
    requires_token = root.bool_("registration_requires_token", False)
    if enable_registration and not (requires_token or without_verification):
        root.error("enable_registration", OPEN_REGISTRATION_ERROR)

    rc_login_s = root.section("rc_login")
    rc_login = LoginRateLimits()
    if rc_login_s is not None:
        rc_login = LoginRateLimits(
            address=_ratelimit(rc_login_s, "address", rc_login.address),
            account=_ratelimit(rc_login_s, "account", rc_login.account),
            failed_attempts=_ratelimit(rc_login_s, "failed_attempts", rc_login.failed_attempts),
        )
    rc_joins_s = root.section("rc_joins")
    rc_joins = JoinRateLimits()
    if rc_joins_s is not None:
        rc_joins = JoinRateLimits(
            local=_ratelimit(rc_joins_s, "local", rc_joins.local),
            remote=_ratelimit(rc_joins_s, "remote", rc_joins.remote),
        )
    rc_invites_s = root.section("rc_invites")
    rc_invites = InviteRateLimits()
    if rc_invites_s is not None:
        rc_invites = InviteRateLimits(
            per_room=_ratelimit(rc_invites_s, "per_room", rc_invites.per_room),
            per_user=_ratelimit(rc_invites_s, "per_user", rc_invites.per_user),
            per_issuer=_ratelimit(rc_invites_s, "per_issuer", rc_invites.per_issuer),
        )
    if root.has("rc_3pid_validation"):
        root.unsupported(
            "rc_3pid_validation",
            "Hamlet has no third-party identifiers (email addresses, phone numbers) to validate",
        )
    root.ignore("rc_3pid_validation")
    rc_admin_redaction = None
    if root.has("rc_admin_redaction"):
        rc_admin_redaction = _ratelimit(root, "rc_admin_redaction", DEFAULT_RC_ADMIN_REDACTION)
        root.unsupported("rc_admin_redaction", "there is no admin redaction API yet")
    root.ignore("rc_admin_redaction")

    user_directory = UserDirectoryConfig()
    ud = root.section("user_directory")
    if ud is not None:
        user_directory = UserDirectoryConfig(
            enabled=ud.bool_("enabled", True),
            search_all_users=ud.bool_("search_all_users", False),
            prefer_local_users=ud.bool_("prefer_local_users", False),
        )
    presence = PresenceConfig()
    pr = root.section("presence")
    if pr is not None:
        presence = PresenceConfig(enabled=pr.bool_("enabled", True))

    registration_shared_secret = root.get("registration_shared_secret", None, to_non_empty_str)

    ip_blacklist, ip_whitelist = push.ip_ranges(root)
    config = HomeServerConfig(
        server_name=name,
        config_dir=ctx.config_dir,
        public_baseurl=public_baseurl,
        listeners=listeners,
        database=database,
        log_config=root.opt_path("log_config"),
        pid_file=root.opt_path("pid_file"),
        opentracing=_opentracing(root),
        signing_key_path=root.path_("signing_key_path", ctx.config_dir / f"{name}.signing.key"),
        media_store_path=root.path_("media_store_path", ctx.config_dir / "media_store"),
        enable_registration=enable_registration,
        enable_registration_without_verification=without_verification,
        registration_requires_token=requires_token,
        registration_shared_secret=registration_shared_secret,
        allow_guest_access=root.bool_("allow_guest_access", False),
        inhibit_user_in_use_error=root.bool_("inhibit_user_in_use_error", False),
        password_config=_password_config(root),
        bcrypt_rounds=root.int_("bcrypt_rounds", 12, 4, 31),
        session_lifetime=root.get("session_lifetime", None, parse_duration_ms),
        auto_join_rooms=root.get("auto_join_rooms", (), _to_room_refs),
        autocreate_auto_join_rooms=root.bool_("autocreate_auto_join_rooms", True),
        auto_join_rooms_for_guests=root.bool_("auto_join_rooms_for_guests", True),
        rc_message=_ratelimit(root, "rc_message", DEFAULT_RC_MESSAGE),
        rc_registration=_ratelimit(root, "rc_registration", DEFAULT_RC_REGISTRATION),
        rc_registration_token_validity=_ratelimit(
            root, "rc_registration_token_validity", DEFAULT_RC_REGISTRATION_TOKEN_VALIDITY
        ),
        rc_login=rc_login,
        rc_joins=rc_joins,
        rc_joins_per_room=_ratelimit(root, "rc_joins_per_room", DEFAULT_RC_JOINS_PER_ROOM),
        rc_invites=rc_invites,
        rc_media_create=_ratelimit(root, "rc_media_create", DEFAULT_RC_MEDIA_CREATE),
        rc_admin_redaction=rc_admin_redaction,
        rc_key_requests=_ratelimit(root, "rc_key_requests", DEFAULT_RC_KEY_REQUESTS),
        rc_to_device=_ratelimit(root, "rc_to_device", DEFAULT_RC_TO_DEVICE),
        rc_room_creation=_ratelimit(root, "rc_room_creation", DEFAULT_RC_ROOM_CREATION),
        rc_presence_per_user=_rc_presence(root),
        rc_profile=_ratelimit(root, "rc_profile", DEFAULT_RC_PROFILE),
        alias_creation_rules=_directory_rules(root, "alias_creation_rules"),
        room_list_publication_rules=_directory_rules(root, "room_list_publication_rules"),
        max_upload_size=_positive_size(root, "max_upload_size", DEFAULT_MAX_UPLOAD_SIZE),
        max_request_body_size=_positive_size(
            root, "max_request_body_size", DEFAULT_MAX_REQUEST_BODY_SIZE
        ),
        admin_contact=root.get("admin_contact", None, to_non_empty_str),
        require_auth_for_profile_requests=root.bool_("require_auth_for_profile_requests", False),
        limit_profile_requests_to_users_who_share_rooms=root.bool_(
            "limit_profile_requests_to_users_who_share_rooms", False
        ),
        enable_set_displayname=root.bool_("enable_set_displayname", True),
        enable_set_avatar_url=root.bool_("enable_set_avatar_url", True),
        user_directory=user_directory,
        presence=presence,
        default_room_version=root.get(
            "default_room_version", DEFAULT_ROOM_VERSION, _to_room_version
        ),
        server_notices=_server_notices(root),
        allow_public_rooms_without_auth=root.bool_("allow_public_rooms_without_auth", False),
        allow_public_rooms_over_federation=root.bool_("allow_public_rooms_over_federation", False),
        allow_profile_lookup_over_federation=root.bool_(
            "allow_profile_lookup_over_federation", True
        ),
        rc_federation=_rc_federation(root),
        trusted_key_servers=server_keys.trusted_key_servers(root),
        old_signing_keys=server_keys.old_signing_keys(root),
        key_refresh_interval=server_keys.key_refresh_interval(root),
        federation_domain_whitelist=server_keys.federation_domain_whitelist(root),
        federation=_federation(root),
        push=push.push_config(root),
        ip_range_blacklist=ip_blacklist,
        ip_range_whitelist=ip_whitelist,
        federation_transport=federation_transport_config(root, ip_blacklist, ip_whitelist),
        app_services=app_services(ctx, root),
        tenants=_tenants(root),
        limits=_limits(root),
        host=_host(ctx, root),
        sync_response_cache_duration=_sync_response_cache_duration(root),
    )
    return config if server_name is not None else None


def _sync_response_cache_duration(root: Section) -> int:
    default = DEFAULT_SYNC_RESPONSE_CACHE_DURATION_MS
    s = root.section("caches")
    if s is None:
        return default
    value = s.get("sync_response_cache_duration", default, parse_duration_ms)
    if value > MAX_SYNC_RESPONSE_CACHE_DURATION_MS:
        s.error("sync_response_cache_duration", "must be at most 1h")
        return default
    return value


def _federation(root: Section) -> FederationConfig:
    s = root.section("federation")
    d = FederationConfig()
    if s is None:
        return d

    def duration(key: str, default: int, lo: int = 0) -> int:
        value = s.get(key, default, parse_duration_ms)
        if not lo <= value <= MAX_FEDERATION_DURATION_MS:
            s.error(key, f"must be between {lo} ms and {MAX_FEDERATION_DURATION_MS} ms")
            return default
        return value

    multiplier = s.number("destination_retry_multiplier", d.destination_retry_multiplier)
    if not 1 <= multiplier <= 1000:
        s.error("destination_retry_multiplier", "must be between 1 and 1000")
        multiplier = d.destination_retry_multiplier
    config = FederationConfig(
        client_timeout=duration("client_timeout", d.client_timeout, 1),
        max_short_retry_delay=duration("max_short_retry_delay", d.max_short_retry_delay),
        max_long_retry_delay=duration("max_long_retry_delay", d.max_long_retry_delay),
        max_short_retries=s.int_("max_short_retries", d.max_short_retries, 0, 100),
        max_long_retries=s.int_("max_long_retries", d.max_long_retries, 0, 100),
        destination_min_retry_interval=duration(
            "destination_min_retry_interval", d.destination_min_retry_interval, 1
        ),
        destination_retry_multiplier=multiplier,
        destination_max_retry_interval=duration(
            "destination_max_retry_interval", d.destination_max_retry_interval, 1
        ),
    )
    if config.destination_max_retry_interval < config.destination_min_retry_interval:
        s.error(
            "destination_max_retry_interval",
            "must not be less than destination_min_retry_interval",
        )
        return dataclasses.replace(
            config, destination_max_retry_interval=config.destination_min_retry_interval
        )
    return config


#: Upper bound of rc_federation's durations (ms): beyond an hour is a typo.
MAX_RC_FEDERATION_MS = 3600_000


def _rc_federation(root: Section) -> FederationRateLimitConfig:
    s = root.section("rc_federation")
    d = FederationRateLimitConfig()
    if s is None:
        return d
    return FederationRateLimitConfig(
        window_size=s.int_("window_size", d.window_size, 1, MAX_RC_FEDERATION_MS),
        # At least 1: the retry hint a refusal carries is window_size / sleep_limit.
        sleep_limit=s.int_("sleep_limit", d.sleep_limit, 1),
        sleep_delay=s.int_("sleep_delay", d.sleep_delay, 0, MAX_RC_FEDERATION_MS),
        reject_limit=s.int_("reject_limit", d.reject_limit, 0),
        concurrent=s.int_("concurrent", d.concurrent, 1),
    )


def _positive_size(s: Section, key: str, default: int) -> int:
    size = s.size(key, default)
    if size <= 0:
        s.error(key, "must be greater than zero")
        return default
    return size


def _rc_presence(root: Section) -> RateLimitConfig:
    s = root.section("rc_presence")
    if s is None:
        return DEFAULT_RC_PRESENCE_PER_USER
    return _ratelimit(s, "per_user", DEFAULT_RC_PRESENCE_PER_USER)


#: Rules are matched per request; more than this is a config mistake, not policy.
MAX_DIRECTORY_RULES = 1000
MAX_RULE_GLOB_LENGTH = 1000


def _directory_rules(root: Section, key: str) -> tuple[DirectoryRule, ...]:
    if not root.has(key):
        return (DirectoryRule("allow"),)
    sections = root.section_list(key) or []
    if len(sections) > MAX_DIRECTORY_RULES:
        root.error(key, f"at most {MAX_DIRECTORY_RULES} rules")
    rules: list[DirectoryRule] = []
    for s in sections[:MAX_DIRECTORY_RULES]:
        action = s.require("action", to_non_empty_str)
        if action is not None and action not in ("allow", "deny"):
            s.error("action", "must be 'allow' or 'deny'")
        globs = {}
        for field_name in ("user_id", "room_id", "alias"):
            glob = s.str_(field_name, "*")
            if len(glob) > MAX_RULE_GLOB_LENGTH:
                s.error(field_name, f"at most {MAX_RULE_GLOB_LENGTH} characters")
            globs[field_name] = glob
        rules.append(DirectoryRule(action or "deny", **globs))
    return tuple(rules)


def _ratelimit(parent: Section, key: str, default: RateLimitConfig) -> RateLimitConfig:
    s = parent.section(key)
    if s is None:
        return default
    config = RateLimitConfig(
        per_second=s.number("per_second", default.per_second),
        burst_count=s.number("burst_count", default.burst_count),
    )
    if config.per_second == 0:
        # Valid (Synapse reads it the same way), but rarely meant: the
        # bucket never refills.
        s.warn("per_second", "0 never refills: once the burst is used, the action is refused")
    return config


def _listeners(root: Section) -> tuple[ListenerConfig, ...]:
    sections = root.section_list("listeners")
    if sections is None:
        return DEFAULT_LISTENERS
    listeners: list[ListenerConfig] = []
    for s in sections:
        port = s.require("port", int_range(0, 65535))
        ltype = s.str_("type", "http")
        if ltype == "metrics":
            # It would serve the client API on a port meant for scrapers.
            s.error(
                "type",
                "metrics listeners are not supported: metrics are served by the host's "
                "control API (host.control, GET /metrics)",
            )
        elif ltype not in LISTENER_TYPES:
            s.error("type", f"unsupported listener type {ltype!r} (expected http)")
        if s.has("bind_addresses"):
            bind = s.str_list("bind_addresses", ("127.0.0.1",))
            s.ignore("bind_address")
        else:
            legacy = s.opt_str("bind_address")  # Synapse's older single-address form
            bind = (legacy,) if legacy is not None else ("127.0.0.1",)
        if not bind:
            s.error("bind_addresses", "must not be empty")
        resources: list[ResourceConfig] = []
        for r in s.section_list("resources") or []:
            names = r.require("names", _to_names)
            for name in names or ():
                if name not in SERVED_RESOURCES:
                    r.unsupported(
                        "names",
                        f"{name!r} is not served; every http listener serves the client, "
                        "media, admin and federation APIs and /health, whatever its "
                        "resources list",
                    )
            resources.append(ResourceConfig(names=names or (), compress=r.bool_("compress", False)))
        tls = s.bool_("tls", False)
        if tls and not (root.has("tls_certificate_path") and root.has("tls_private_key_path")):
            s.error("tls", "a TLS listener needs tls_certificate_path and tls_private_key_path")
        listeners.append(
            ListenerConfig(
                port=port or 0,
                bind_addresses=bind,
                type=ltype,
                tls=tls,
                x_forwarded=s.bool_("x_forwarded", False),
                resources=tuple(resources),
            )
        )
    return tuple(listeners)


def _to_names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise Invalid("must be a list of resource names (e.g. [client])")
    return tuple(value)


def _database(ctx: Context, root: Section) -> DatabaseConfig:
    default = DatabaseConfig(
        name="sqlite3",
        args=MappingProxyType(
            {
                "database": str(ctx.config_dir / "homeserver.db"),
                "cp_min": DEFAULT_SQLITE_CP,
                "cp_max": DEFAULT_SQLITE_CP,
            }
        ),
    )
    s = root.section("database")
    if s is None:
        return default
    s.ignore("allow_unsafe_locale")
    engine = s.require("name", to_str)
    txn_limit = s.int_("txn_limit", 0, 0)
    if txn_limit:
        s.unsupported("txn_limit", "connections are never recycled after N transactions")
    a = s.section("args")
    if engine not in ("sqlite3", "psycopg2"):
        if engine is not None:
            s.error("name", f"unknown engine {engine!r} (expected sqlite3 or psycopg2)")
        if a is not None:
            a.ignore(*a.raw)  # can't judge args for an unknown engine
        return default

    args: dict[str, Any] = {}
    if engine == "sqlite3":
        if a is None:
            s.value("args")
            s.error("args.database", "missing required key")
            return default
        path = a.require("database", to_str)
        if path is not None:
            if path == ":memory:":
                args["database"] = path
            elif not path.strip():
                a.error("database", "must not be empty")
            else:
                p = Path(path).expanduser()
                args["database"] = str(p if p.is_absolute() else ctx.config_dir / p)
        cp_default = DEFAULT_SQLITE_CP
    else:
        a = a or s.ctx.section({}, s.key_path("args"))
        a.ignore("allow_unsafe_locale")
        for key in ("user", "password", "host"):
            value = a.opt_str(key)
            if value is not None:
                args[key] = value
        database = a.opt_str("database")
        dbname = a.opt_str("dbname")
        if database is not None and dbname is not None and database != dbname:
            a.error("dbname", "conflicts with database (set only one of them)")
        if (database or dbname) is not None:
            args["database"] = database or dbname
        port = a.opt_int("port", 1, 65535)
        if port is not None:
            args["port"] = port
        schema = a.get("schema", DEFAULT_PG_SCHEMA, _to_pg_identifier)
        args["schema"] = schema
        cp_default = DEFAULT_PG_CP_MIN

    cp_min = a.int_("cp_min", cp_default, 1)
    cp_max_default = DEFAULT_SQLITE_CP if engine == "sqlite3" else DEFAULT_PG_CP_MAX
    cp_max = a.int_("cp_max", max(cp_max_default, cp_min), 1)
    if cp_min > cp_max:
        a.error("cp_max", f"must be >= cp_min ({cp_min})")
    args["cp_min"] = cp_min
    args["cp_max"] = cp_max
    name: DatabaseEngine = "sqlite3" if engine == "sqlite3" else "psycopg2"
    return DatabaseConfig(name=name, args=MappingProxyType(args), txn_limit=txn_limit)


def _to_pg_identifier(value: Any) -> str:
    s = to_str(value)
    if not _PG_IDENT_RE.fullmatch(s):
        raise Invalid(
            f"invalid schema name {s!r} (letters, digits and _, not starting with a digit, "
            "at most 63 characters)"
        )
    return s


def _password_config(root: Section) -> PasswordConfig:
    s = root.section("password_config")
    if s is None:
        return PasswordConfig()
    only_for_reauth = False
    enabled_raw = s.value("enabled")
    if enabled_raw == "only_for_reauth":
        enabled, only_for_reauth = True, True
    else:
        enabled = s.bool_("enabled", True)
    localdb_enabled = s.bool_("localdb_enabled", True)
    pepper = s.str_("pepper", "")
    policy = PasswordConfig(
        enabled=enabled,
        pepper=pepper,
        localdb_enabled=localdb_enabled,
        only_for_reauth=only_for_reauth,
    )
    p = s.section("policy")
    if p is None:
        return policy
    policy_enabled = p.bool_("enabled", False)
    minimum_length = p.int_("minimum_length", 0, 0)
    flags = {
        k: p.bool_(k, False)
        for k in ("require_digit", "require_symbol", "require_lowercase", "require_uppercase")
    }
    if not policy_enabled:
        return policy
    return PasswordConfig(
        enabled=enabled,
        pepper=pepper,
        minimum_length=minimum_length,
        localdb_enabled=localdb_enabled,
        only_for_reauth=only_for_reauth,
        **flags,
    )


def _server_notices(root: Section) -> ServerNoticesConfig | None:
    s = root.section("server_notices")
    if s is None:
        return None
    localpart = s.require("system_mxid_localpart", to_non_empty_str)
    notices = ServerNoticesConfig(
        system_mxid_localpart=localpart or "",
        system_mxid_display_name=s.opt_str("system_mxid_display_name"),
        system_mxid_avatar_url=s.opt_str("system_mxid_avatar_url"),
        room_name=s.str_("room_name", "Server Notices"),
        auto_join=s.bool_("auto_join", False),
    )
    return notices


def _tenants(root: Section) -> tuple[Path, ...]:
    paths = root.str_list("tenants", ())
    out: list[Path] = []
    for i, p in enumerate(paths):
        if not p.strip():
            root.error(f"tenants[{i}]", "must not be empty")
            continue
        pp = Path(p).expanduser()
        out.append(pp if pp.is_absolute() else root.ctx.config_dir / pp)
    return tuple(out)


def _host(ctx: Context, root: Section) -> HostConfig | None:
    s = root.section("host")
    if s is None:
        return None
    control = s.section("control")
    port = secret = None
    bind_address = "127.0.0.1"
    if control is not None:
        port = control.opt_int("port", 0, 65535)
        bind_address = control.str_("bind_address", "127.0.0.1")
        secret = control.get("secret", None, to_non_empty_str)
        if port is not None and secret is None:
            control.error("secret", "required when host.control.port is set")
        if port is not None and secret is not None and len(secret) < MIN_CONTROL_SECRET_LENGTH:
            control.warn(
                "secret",
                f"shorter than {MIN_CONTROL_SECRET_LENGTH} characters: anyone who guesses "
                "it can provision and remove tenants",
            )
        if port is not None and _is_wildcard(bind_address):
            control.warn(
                "bind_address",
                f"{bind_address} exposes the control API on every interface; "
                "bind it to 127.0.0.1 or a private address",
            )
    tenant_database = None
    if s.has("database"):
        tenant_database = _database(ctx, s)
    return HostConfig(
        tenants_dir=s.path_("tenants_dir", ctx.config_dir / "tenants"),
        control_port=port,
        control_bind_address=bind_address,
        control_secret=secret,
        hibernate_after_ms=s.get("hibernate_after", 0, parse_duration_ms),
        tenant_database=tenant_database,
        drain_timeout_ms=s.get("drain_timeout", 10_000, parse_duration_ms),
    )


def _is_wildcard(address: str) -> bool:
    return address.strip().strip("[]") in ("", "0.0.0.0", "::", "*")


def _opentracing(root: Section) -> TracingConfig:
    s = root.section("opentracing")
    if s is None:
        return TracingConfig()
    rate = s.number("sample_rate", 1.0)
    if rate > 1:
        s.error("sample_rate", "must be between 0 and 1")
        rate = 1.0
    whitelist = s.str_list("homeserver_whitelist", ()) if s.has("homeserver_whitelist") else None
    for i, pattern in enumerate(whitelist or ()):
        try:
            re.compile(pattern)
        except re.error as e:
            s.error(f"homeserver_whitelist[{i}]", f"not a regular expression: {e}")
    endpoint = s.str_("otlp_endpoint", TracingConfig().otlp_endpoint)
    if urlsplit(endpoint).scheme not in ("http", "https"):
        s.error("otlp_endpoint", "must be an http:// or https:// URL")
    return TracingConfig(
        enabled=s.bool_("enabled", False),
        sample_rate=rate,
        homeserver_whitelist=whitelist,
        otlp_endpoint=endpoint,
        service_name=s.get("service_name", "hamlet", to_non_empty_str),
    )


def _limits(root: Section) -> LimitsConfig:
    s = root.section("limits")
    defaults = LimitsConfig()
    if s is None:
        return defaults
    return LimitsConfig(
        max_concurrent_requests=s.opt_int("max_concurrent_requests", 1),
        max_queued_requests=s.opt_int("max_queued_requests", 0),
        max_users=s.opt_int("max_users", 0),
        max_media_bytes=s.opt_size("max_media_bytes"),
        max_concurrent_syncs_per_user=s.get(
            "max_concurrent_syncs_per_user",
            DEFAULT_SYNCS_PER_USER,
            int_range(1, 10_000),
        ),
        max_concurrent_sync_builds_per_user=s.int_(
            "max_concurrent_sync_builds_per_user", defaults.max_concurrent_sync_builds_per_user, 1
        ),
        max_concurrent_sync_builds=s.int_(
            "max_concurrent_sync_builds", defaults.max_concurrent_sync_builds, 1
        ),
        max_to_device_message_size=_positive_size(
            s, "max_to_device_message_size", defaults.max_to_device_message_size
        ),
        max_to_device_messages_per_request=s.int_(
            "max_to_device_messages_per_request", defaults.max_to_device_messages_per_request, 1
        ),
        max_to_device_queue_per_sender=s.int_(
            "max_to_device_queue_per_sender", defaults.max_to_device_queue_per_sender, 1
        ),
        max_to_device_queue_per_device=s.int_(
            "max_to_device_queue_per_device", defaults.max_to_device_queue_per_device, 1
        ),
        max_to_device_sync_bytes=_positive_size(
            s, "max_to_device_sync_bytes", defaults.max_to_device_sync_bytes
        ),
        max_devices_per_user=s.int_("max_devices_per_user", defaults.max_devices_per_user, 1),
        max_one_time_keys_per_algorithm=s.int_(
            "max_one_time_keys_per_algorithm", defaults.max_one_time_keys_per_algorithm, 1
        ),
        max_account_data_size=_positive_size(
            s, "max_account_data_size", defaults.max_account_data_size
        ),
        max_account_data_entries=s.int_(
            "max_account_data_entries", defaults.max_account_data_entries, 1
        ),
        max_account_data_total_size=_positive_size(
            s, "max_account_data_total_size", defaults.max_account_data_total_size
        ),
        max_account_data_sync_bytes=_positive_size(
            s, "max_account_data_sync_bytes", defaults.max_account_data_sync_bytes
        ),
        max_status_msg_length=s.int_("max_status_msg_length", defaults.max_status_msg_length, 0),
        max_concurrent_password_hashes=s.int_(
            "max_concurrent_password_hashes", defaults.max_concurrent_password_hashes, 1
        ),
        max_concurrent_federation_transactions=s.int_(
            "max_concurrent_federation_transactions",
            defaults.max_concurrent_federation_transactions,
            1,
            10_000,
        ),
        http_keepalive_timeout_ms=s.get(
            "http_keepalive_timeout", defaults.http_keepalive_timeout_ms, parse_duration_ms
        ),
        http_header_timeout_ms=s.get(
            "http_header_timeout", defaults.http_header_timeout_ms, parse_duration_ms
        ),
        max_connections_per_ip=s.int_("max_connections_per_ip", defaults.max_connections_per_ip, 1),
        max_connections=s.opt_int("max_connections", 1),
        max_concurrent_federation_requests=s.int_(
            "max_concurrent_federation_requests", defaults.max_concurrent_federation_requests, 1
        ),
    )
