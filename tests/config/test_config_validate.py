"""validate_config: defaults, types, error paths, warnings."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from hamlet.config import (
    ConfigError,
    HomeServerConfig,
    ListenerConfig,
    RateLimitConfig,
    ResourceConfig,
    validate_config,
)
from hamlet.config.model import FederationRateLimitConfig, PushConfig


def ok(raw: dict[str, Any], config_dir: Path = Path("/etc/hamlet")) -> HomeServerConfig:
    config, _ = validate_config(raw, config_dir=config_dir)
    return config


def errors(raw: dict[str, Any], config_dir: Path = Path("/etc/hamlet")) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(raw, config_dir=config_dir)
    return info.value.errors


def base(**extra: Any) -> dict[str, Any]:
    return {"server_name": "example.com", **extra}


# -- defaults ------------------------------------------------------------------


def test_defaults() -> None:
    c, warnings = validate_config({"server_name": "example.com"}, config_dir=Path("/etc/hamlet"))
    assert warnings == []
    assert c.server_name == "example.com"
    assert c.config_dir == Path("/etc/hamlet")
    assert c.config_path is None
    assert c.public_baseurl == "https://example.com/"
    assert c.listeners == (
        ListenerConfig(
            port=8008,
            bind_addresses=("127.0.0.1",),
            type="http",
            tls=False,
            x_forwarded=False,
            resources=(ResourceConfig(names=("client",), compress=False),),
        ),
    )
    assert c.database.name == "sqlite3"
    assert c.database.sqlite_path() == "/etc/hamlet/homeserver.db"
    assert c.signing_key_path == Path("/etc/hamlet/example.com.signing.key")
    assert c.media_store_path == Path("/etc/hamlet/media_store")
    assert c.log_config is None
    assert c.enable_registration is False
    assert c.enable_registration_without_verification is False
    assert c.registration_requires_token is False
    assert c.registration_shared_secret is None
    assert c.allow_guest_access is False
    assert c.inhibit_user_in_use_error is False
    assert c.password_config.enabled is True
    assert c.password_config.pepper == ""
    assert c.password_config.minimum_length == 0
    assert c.password_config.localdb_enabled is True
    assert c.bcrypt_rounds == 12
    assert c.session_lifetime is None
    assert c.auto_join_rooms == ()
    assert c.max_upload_size == 50 * 1024 * 1024
    assert c.max_request_body_size == 10 * 1024 * 1024
    assert c.admin_contact is None
    assert c.require_auth_for_profile_requests is False
    assert c.limit_profile_requests_to_users_who_share_rooms is False
    assert c.enable_set_displayname is True
    assert c.enable_set_avatar_url is True
    assert c.user_directory.enabled is True
    assert c.user_directory.search_all_users is False
    assert c.presence.enabled is True
    assert c.default_room_version == "10"
    assert c.server_notices is None
    assert c.allow_public_rooms_without_auth is False
    assert c.allow_public_rooms_over_federation is False
    assert c.tenants == ()
    assert c.limits.max_concurrent_requests is None
    assert c.limits.max_users is None
    assert c.limits.max_media_bytes is None
    assert c.limits.max_concurrent_syncs_per_user == 10


def test_default_rate_limits_match_synapse() -> None:
    c = ok(base())
    rl = RateLimitConfig
    assert c.rc_message == rl(0.2, 10)
    assert c.rc_registration == rl(0.17, 3)
    assert c.rc_registration_token_validity == rl(0.1, 5)
    assert c.rc_login.address == rl(0.003, 5)
    assert c.rc_login.account == rl(0.003, 5)
    assert c.rc_login.failed_attempts == rl(0.17, 3)
    assert c.rc_joins.local == rl(0.1, 10)
    assert c.rc_joins.remote == rl(0.01, 10)
    assert c.rc_joins_per_room == rl(1, 10)
    assert c.rc_invites.per_room == rl(0.3, 10)
    assert c.rc_invites.per_user == rl(0.003, 5)
    assert c.rc_invites.per_issuer == rl(0.3, 10)
    assert c.rc_media_create == rl(10, 50)
    assert c.rc_admin_redaction is None
    assert c.rc_federation == FederationRateLimitConfig(1000, 10, 500, 50, 3)
    assert c.allow_profile_lookup_over_federation is True


def test_rc_federation() -> None:
    c = ok(base(rc_federation={"window_size": 2000, "concurrent": 1, "reject_limit": 0}))
    assert c.rc_federation == FederationRateLimitConfig(2000, 10, 500, 0, 1)
    assert sorted(
        errors(base(rc_federation={"sleep_limit": 0, "concurrent": 0, "window_size": "1s"}))
    ) == [
        "rc_federation.concurrent: must be an integer >= 1",
        "rc_federation.sleep_limit: must be an integer >= 1",
        "rc_federation.window_size: must be an integer between 1 and 3600000",
    ]


def test_config_is_immutable() -> None:
    c = ok(base())
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.server_name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.database.args["database"] = "x"  # type: ignore[index]


# -- server_name and public_baseurl ----------------------------------------------


def test_missing_server_name() -> None:
    assert errors({}) == ["server_name: missing required key"]


def test_null_server_name_is_missing() -> None:
    assert errors({"server_name": None}) == ["server_name: missing required key"]


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "localhost",
        "localhost:8448",
        "matrix.example.org:443",
        "1.2.3.4",
        "1.2.3.4:8448",
        "[::1]",
        "[2001:db8::1]:8448",
        "my-host",
    ],
)
def test_valid_server_names(name: str) -> None:
    assert ok(base(server_name=name)).server_name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        "exa mple.com",
        "example.com:",
        "example.com:0",
        "example.com:99999",
        "a..b",
        "[::1",
        "[zz::1]",
        "1.2.3.256",
        "@user:example.com",
        "https://example.com",
        ".example.com",
    ],
)
def test_invalid_server_names(name: str) -> None:
    (err,) = errors(base(server_name=name))
    assert err.startswith("server_name: ")


def test_server_name_must_be_string() -> None:
    assert errors(base(server_name=12)) == ["server_name: must be a string"]


def test_public_baseurl_normalised() -> None:
    c = ok(base(public_baseurl="https://matrix.example.com"))
    assert c.public_baseurl == "https://matrix.example.com/"
    c = ok(base(public_baseurl="http://127.0.0.1:8008/"))
    assert c.public_baseurl == "http://127.0.0.1:8008/"


@pytest.mark.parametrize("url", ["ftp://example.com/", "example.com", "https://", 5])
def test_public_baseurl_invalid(url: Any) -> None:
    (err,) = errors(base(public_baseurl=url))
    assert err.startswith("public_baseurl: ")


# -- registration ---------------------------------------------------------------


def test_open_registration_without_verification_is_an_error() -> None:
    (err,) = errors(base(enable_registration=True))
    assert err.startswith("enable_registration: ")
    assert "without any verification" in err
    assert "enable_registration_without_verification" in err


def test_open_registration_allowed_explicitly() -> None:
    c = ok(base(enable_registration=True, enable_registration_without_verification=True))
    assert c.enable_registration and c.enable_registration_without_verification


def test_registration_with_token_is_verified() -> None:
    c = ok(base(enable_registration=True, registration_requires_token=True))
    assert c.enable_registration and c.registration_requires_token


@pytest.mark.parametrize("value", [1, 0, "true", "yes", "false"])
def test_bool_must_be_real_bool(value: Any) -> None:
    assert errors(base(allow_guest_access=value)) == [
        "allow_guest_access: must be a boolean (true or false)"
    ]


def test_password_config() -> None:
    c = ok(
        base(
            password_config={
                "enabled": False,
                "pepper": "pep",
                "policy": {"enabled": True, "minimum_length": 8, "require_digit": True},
            }
        )
    )
    assert c.password_config.enabled is False
    assert c.password_config.pepper == "pep"
    assert c.password_config.minimum_length == 8
    assert c.password_config.require_digit is True


def test_password_policy_off_means_no_minimum() -> None:
    c = ok(base(password_config={"policy": {"minimum_length": 8}}))
    assert c.password_config.minimum_length == 0


def test_password_only_for_reauth() -> None:
    c = ok(base(password_config={"enabled": "only_for_reauth"}))
    assert c.password_config.enabled and c.password_config.only_for_reauth


def test_password_config_errors() -> None:
    errs = errors(base(password_config={"enabled": "sometimes", "policy": {"minimum_length": -1}}))
    assert errs == [
        "password_config.enabled: must be a boolean (true or false)",
        "password_config.policy.minimum_length: must be an integer >= 0",
    ]


def test_bcrypt_rounds_range() -> None:
    assert ok(base(bcrypt_rounds=4)).bcrypt_rounds == 4
    assert errors(base(bcrypt_rounds=3)) == ["bcrypt_rounds: must be an integer between 4 and 31"]


# -- listeners ------------------------------------------------------------------


def test_listeners_parsed() -> None:
    c = ok(
        base(
            listeners=[
                {
                    "port": 8448,
                    "bind_addresses": ["::", "0.0.0.0"],
                    "type": "http",
                    "x_forwarded": True,
                    "resources": [{"names": ["client", "federation"], "compress": True}],
                },
                {"port": 9000, "bind_address": "127.0.0.1"},
            ]
        )
    )
    assert c.listeners == (
        ListenerConfig(
            port=8448,
            bind_addresses=("::", "0.0.0.0"),
            x_forwarded=True,
            resources=(ResourceConfig(names=("client", "federation"), compress=True),),
        ),
        ListenerConfig(port=9000),
    )


def test_tls_without_files_and_metrics_listeners_are_refused() -> None:
    # Either would serve something else than it says: plain HTTP, or the client API.
    assert errors(
        base(listeners=[{"port": 8448, "tls": True}, {"port": 9000, "type": "metrics"}])
    ) == [
        "listeners[0].tls: a TLS listener needs tls_certificate_path and tls_private_key_path",
        "listeners[1].type: metrics listeners are not supported: metrics are served by the "
        "host's control API (host.control, GET /metrics)",
    ]
    c, _ = validate_config(
        base(
            listeners=[{"port": 8448, "tls": True, "resources": [{"names": ["federation"]}]}],
            tls_certificate_path="tls.crt",
            tls_private_key_path="/etc/tls.key",
        ),
        config_dir=Path("/srv"),
    )
    assert c.listeners[0].tls
    assert c.federation_transport.tls_certificate_path == Path("/srv/tls.crt")
    assert c.federation_transport.tls_private_key_path == Path("/etc/tls.key")


@pytest.mark.parametrize("port", [65536, -1, "8008", 8008.0, True, None])
def test_bad_port(port: Any) -> None:
    expected = (
        "listeners[0].port: missing required key"
        if port is None
        else "listeners[0].port: must be an integer between 0 and 65535"
    )
    assert errors(base(listeners=[{"port": port}])) == [expected]


def test_listener_errors_have_index_paths() -> None:
    errs = errors(
        base(
            listeners=[
                {"port": 8008},
                {
                    "port": 8009,
                    "type": "manhole",
                    "bind_addresses": "0.0.0.0",
                    "resources": [{"names": "client"}, "x"],
                },
                "not a mapping",
            ]
        )
    )
    assert errs == [
        "listeners[2]: must be a mapping",
        "listeners[1].type: unsupported listener type 'manhole' (expected http)",
        "listeners[1].bind_addresses: must be a list of strings",
        "listeners[1].resources[1]: must be a mapping",
        "listeners[1].resources[0].names: must be a list of resource names (e.g. [client])",
    ]


def test_listeners_must_be_list() -> None:
    assert errors(base(listeners={"port": 8008})) == ["listeners: must be a list"]


# -- rate limits ----------------------------------------------------------------


def test_rate_limits_parsed_with_partial_defaults() -> None:
    c = ok(
        base(
            rc_message={"per_second": 1, "burst_count": 20},
            rc_login={"address": {"per_second": 0.5}, "failed_attempts": {"burst_count": 1}},
            rc_joins={"remote": {"per_second": 0, "burst_count": 0}},
            rc_invites={"per_issuer": {"per_second": 2}},
            rc_admin_redaction={"per_second": 5},
        )
    )
    assert c.rc_message == RateLimitConfig(1.0, 20.0)
    assert c.rc_login.address == RateLimitConfig(0.5, 5)
    assert c.rc_login.account == RateLimitConfig(0.003, 5)
    assert c.rc_login.failed_attempts == RateLimitConfig(0.17, 1)
    assert c.rc_joins.remote == RateLimitConfig(0, 0)
    assert c.rc_joins.local == RateLimitConfig(0.1, 10)
    assert c.rc_invites.per_issuer == RateLimitConfig(2, 10)
    assert c.rc_admin_redaction == RateLimitConfig(5, 50)
    assert isinstance(c.rc_message.per_second, float)


def test_rate_limit_errors() -> None:
    errs = errors(
        base(
            rc_message={"per_second": -0.1},
            rc_login={"address": {"per_second": "fast"}, "account": {"burst_count": True}},
            rc_joins="lots",
            rc_media_create={"burst_count": float("nan")},
        )
    )
    assert errs == [
        "rc_login.address.per_second: must be a number",
        "rc_login.account.burst_count: must be a number",
        "rc_joins: must be a mapping",
        "rc_message.per_second: must be a finite number >= 0",
        "rc_media_create.burst_count: must be a finite number >= 0",
    ]


# -- sizes and durations -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1234, 1234),
        ("1234", 1234),
        ("10K", 10 * 1024),
        ("10k", 10 * 1024),
        ("50M", 50 * 1024**2),
        ("1G", 1024**3),
        ("2GB", 2 * 1024**3),
        ("5MiB", 5 * 1024**2),
    ],
)
def test_size_strings(value: Any, expected: int) -> None:
    assert ok(base(max_upload_size=value)).max_upload_size == expected
    assert ok(base(max_request_body_size=value)).max_request_body_size == expected


@pytest.mark.parametrize("value", ["10Q", "M", "-5M", "1.5M", True, [], -1])
def test_bad_sizes(value: Any) -> None:
    (err,) = errors(base(max_upload_size=value))
    assert err.startswith("max_upload_size: ")


def test_zero_size_rejected() -> None:
    assert errors(base(max_upload_size=0)) == ["max_upload_size: must be greater than zero"]


@pytest.mark.parametrize(
    ("value", "ms"),
    [(60000, 60000), ("30s", 30000), ("24h", 86400000), ("7d", 604800000), ("1w", 604800000)],
)
def test_session_lifetime(value: Any, ms: int) -> None:
    assert ok(base(session_lifetime=value)).session_lifetime == ms


def test_bad_session_lifetime() -> None:
    (err,) = errors(base(session_lifetime="soon"))
    assert err.startswith("session_lifetime: invalid duration")


# -- other keys -------------------------------------------------------------------


def test_misc_keys() -> None:
    c = ok(
        base(
            admin_contact="mailto:admin@example.com",
            registration_shared_secret="s3cret",
            user_directory={"enabled": False, "search_all_users": True},
            presence={"enabled": False},
            default_room_version=11,
            server_notices={"system_mxid_localpart": "notices", "room_name": "News"},
            auto_join_rooms=["#welcome:example.com", "!abc:example.com"],
            limits={
                "max_concurrent_requests": 10,
                "max_queued_requests": 50,
                "max_users": 100,
                "max_media_bytes": "1G",
                "max_concurrent_syncs_per_user": 4,
            },
            enable_set_displayname=False,
        )
    )
    assert c.admin_contact == "mailto:admin@example.com"
    assert c.registration_shared_secret == "s3cret"
    assert not c.user_directory.enabled and c.user_directory.search_all_users
    assert not c.presence.enabled
    assert c.default_room_version == "11"
    assert c.server_notices is not None
    assert c.server_notices.system_mxid_localpart == "notices"
    assert c.server_notices.room_name == "News"
    assert c.auto_join_rooms == ("#welcome:example.com", "!abc:example.com")
    assert c.limits.max_concurrent_requests == 10
    assert c.limits.max_queued_requests == 50
    assert c.limits.max_users == 100
    assert c.limits.max_media_bytes == 1024**3
    assert c.limits.max_concurrent_syncs_per_user == 4
    assert c.enable_set_displayname is False


def test_misc_errors() -> None:
    errs = errors(
        base(
            default_room_version="99",
            server_notices={"room_name": "x"},
            auto_join_rooms=["welcome"],
            limits={"max_concurrent_requests": 0, "max_concurrent_syncs_per_user": 0},
            registration_shared_secret="",
        )
    )
    assert errs == [
        "registration_shared_secret: must not be empty",
        "auto_join_rooms: item 0: 'welcome' is not a room alias (#alias:server) "
        "or room ID (!id:server)",
        "default_room_version: room version '99' cannot be created here (creatable: 10, 11, 12)",
        "server_notices.system_mxid_localpart: missing required key",
        "limits.max_concurrent_requests: must be an integer >= 1",
        "limits.max_concurrent_syncs_per_user: must be an integer between 1 and 10000",
    ]


# -- unknown keys ------------------------------------------------------------------


def test_unknown_keys_warn() -> None:
    c, warnings = validate_config(
        base(
            foo=1,
            report_stats=False,
            database={"name": "sqlite3", "args": {"database": "x.db", "bogus": 1}, "extra": 2},
            listeners=[{"port": 8008, "shiny": True, "resources": [{"names": ["client"], "z": 0}]}],
            rc_login={"address": {"per_second": 1, "per_minute": 2}, "nope": {}},
        ),
        config_dir=Path("/srv"),
    )
    assert c.server_name == "example.com"
    assert sorted(warnings) == sorted(
        [
            "unknown key 'foo'",
            "unknown key 'report_stats'",
            "unknown key 'database.extra'",
            "unknown key 'database.args.bogus'",
            "unknown key 'listeners[0].shiny'",
            "unknown key 'listeners[0].resources[0].z'",
            "unknown key 'rc_login.nope'",
            "unknown key 'rc_login.address.per_minute'",
        ]
    )


def test_keys_that_change_nothing_warn() -> None:
    _, warnings = validate_config(
        base(
            database={"name": "sqlite3", "txn_limit": 10, "args": {"database": "x.db"}},
            listeners=[{"port": 8008, "resources": [{"names": ["client", "openid"]}]}],
            rc_admin_redaction={"per_second": 1, "burst_count": 5},
        ),
        config_dir=Path("/srv"),
    )
    assert sorted(warnings) == sorted(
        [
            "unsupported key 'database.txn_limit' has no effect: connections are never "
            "recycled after N transactions",
            "unsupported key 'listeners[0].resources[0].names' has no effect: 'openid' is "
            "not served; every http listener serves the client, media, admin and federation "
            "APIs and /health, whatever its resources list",
            "unsupported key 'rc_admin_redaction' has no effect: there is no admin redaction "
            "API yet",
        ]
    )
    # Their harmless values say nothing.
    _, warnings = validate_config(
        base(
            database={"name": "sqlite3", "txn_limit": 0, "args": {"database": "x.db"}},
            listeners=[{"port": 8008, "resources": [{"names": ["client", "media"]}]}],
            allow_public_rooms_over_federation=False,
        ),
        config_dir=Path("/srv"),
    )
    assert warnings == []


def test_allow_unsafe_locale_is_ignored_silently() -> None:
    _, warnings = validate_config(
        base(database={"name": "psycopg2", "allow_unsafe_locale": True, "args": {}}),
        config_dir=Path("/srv"),
    )
    assert warnings == []


# -- many errors at once ------------------------------------------------------------


def test_all_errors_reported_together() -> None:
    errs = errors(
        {
            "enable_registration": True,
            "database": {"name": "sqlite3", "args": {"database": 5}},
            "listeners": [{"port": 70000}],
            "rc_login": {"address": {"per_second": "x"}},
            "max_upload_size": "big",
            "presence": {"enabled": "yes"},
        }
    )
    assert errs == [
        "server_name: missing required key",
        "listeners[0].port: must be an integer between 0 and 65535",
        "database.args.database: must be a string",
        "enable_registration: " + errs[3].split(": ", 1)[1],
        "rc_login.address.per_second: must be a number",
        "presence.enabled: must be a boolean (true or false)",
        "max_upload_size: invalid size 'big' (expected e.g. 1048576, '10K', '50M' or '1G')",
    ]
    assert "verification" in errs[3]


def test_config_error_message_lists_errors() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({"listeners": [{"port": -1}]}, config_dir=Path("/"))
    text = str(info.value)
    assert "server_name: missing required key" in text
    assert "listeners[0].port" in text


def test_port_zero_means_any_free_port() -> None:
    config, _ = validate_config(base(listeners=[{"port": 0}]), config_dir=Path("/"))
    assert config.listeners[0].port == 0


@pytest.mark.parametrize("version", ["1", "9", "13"])
def test_default_room_version_must_be_creatable(version: str) -> None:
    # These are understood over federation but cannot be created locally.
    assert errors(base(default_room_version=version)) == [
        f"default_room_version: room version {version!r} cannot be created here"
        " (creatable: 10, 11, 12)"
    ]


def test_push_and_ip_range_keys() -> None:
    config, warnings = validate_config(
        base(
            push={
                "enabled": False,
                "include_content": False,
                "group_unread_count_by_room": False,
                "max_pushers_per_user": 3,
                "jitter_delay": "10s",
            },
            ip_range_blacklist=["10.0.0.0/8"],
            ip_range_whitelist=["10.1.0.0/16"],
        ),
        config_dir=Path("/etc/hamlet"),
    )
    assert config.push == PushConfig(False, False, False, 3)
    assert config.ip_range_blacklist == ("10.0.0.0/8",)
    assert config.ip_range_whitelist == ("10.1.0.0/16",)
    assert any("push.jitter_delay" in w for w in warnings)
    default = ok(base())
    assert "127.0.0.0/8" in default.ip_range_blacklist and default.push == PushConfig()
    assert any("ip_range_blacklist" in e for e in errors(base(ip_range_blacklist=["nonsense"])))
    assert any("max_pushers_per_user" in e for e in errors(base(push={"max_pushers_per_user": 0})))
