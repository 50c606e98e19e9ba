"""trusted_key_servers, old_signing_keys, key_refresh_interval, federation_domain_whitelist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hamlet.config import ConfigError, HomeServerConfig, validate_config
from hamlet.config.model import TrustedKeyServer
from hamlet.core.crypto import generate_signing_key, verify_key_base64
from hamlet.core.server_keys import OldKey

KEY = generate_signing_key("k")
KEY_B64 = verify_key_base64(KEY)


def ok(**extra: Any) -> HomeServerConfig:
    config, warnings = validate_config(
        {"server_name": "example.com", **extra}, config_dir=Path("/")
    )
    assert warnings == []
    return config


def errors(**extra: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config({"server_name": "example.com", **extra}, config_dir=Path("/"))
    return info.value.errors


def test_defaults_ask_origins_directly() -> None:
    c = ok()
    assert c.trusted_key_servers == ()
    assert c.old_signing_keys == ()
    assert c.key_refresh_interval == 24 * 3600 * 1000
    assert c.federation_domain_whitelist is None


def test_synapse_shaped_values() -> None:
    c = ok(
        trusted_key_servers=[
            {"server_name": "matrix.org", "verify_keys": {KEY.key_id: KEY_B64}},
            {"server_name": "notary.example:8448", "accept_keys_insecurely": True},
        ],
        old_signing_keys={"ed25519:old": {"key": KEY_B64, "expired_ts": 1500000000000}},
        key_refresh_interval="2h",
        federation_domain_whitelist=["a.example", "127.0.0.1:8448"],
    )
    assert c.trusted_key_servers == (
        TrustedKeyServer("matrix.org", ((KEY.key_id, KEY_B64),)),
        TrustedKeyServer("notary.example:8448", None),
    )
    assert c.old_signing_keys == (OldKey("ed25519:old", KEY_B64, 1500000000000),)
    assert c.key_refresh_interval == 2 * 3600 * 1000
    assert c.federation_domain_whitelist == frozenset({"a.example", "127.0.0.1:8448"})
    assert ok(federation_domain_whitelist=[]).federation_domain_whitelist == frozenset()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"trusted_key_servers": {"server_name": "x"}}, "trusted_key_servers: must be a list"),
        ({"trusted_key_servers": [{}]}, "server_name: missing required key"),
        ({"trusted_key_servers": [{"server_name": "bad name"}]}, "is not a server name"),
        (
            {"trusted_key_servers": [{"server_name": "m.org", "verify_keys": {"k": KEY_B64}}]},
            "not an ed25519 key ID",
        ),
        (
            {"trusted_key_servers": [{"server_name": "m.org", "verify_keys": {KEY.key_id: "xx"}}]},
            "not an unpadded-base64 ed25519 public key",
        ),
        ({"trusted_key_servers": [{"server_name": "m.org", "verify_keys": {}}]}, "non-empty"),
        ({"trusted_key_servers": [{"server_name": f"s{i}.org"} for i in range(17)]}, "at most 16"),
        ({"old_signing_keys": {"ed25519:old": {"key": KEY_B64}}}, "expired_ts"),
        ({"old_signing_keys": {"ed25519:old": KEY_B64}}, "must be a mapping"),
        ({"old_signing_keys": ["ed25519:old"]}, "must be a mapping"),
        ({"key_refresh_interval": 0}, "greater than zero"),
        ({"key_refresh_interval": "soon"}, "invalid duration"),
        ({"federation_domain_whitelist": "a.example"}, "must be a list"),
        ({"federation_domain_whitelist": ["a b"]}, "is not a server name"),
    ],
)
def test_bad_values(extra: dict[str, Any], fragment: str) -> None:
    assert any(fragment in e for e in errors(**extra)), errors(**extra)
