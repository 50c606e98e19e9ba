"""Federation transport keys, with Synapse's names and semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from hamlet.config import ConfigError, FederationTransportConfig, HomeServerConfig, validate_config
from hamlet.config.model import DEFAULT_IP_RANGE_BLACKLIST


def load_all(**raw: object) -> HomeServerConfig:
    config, warnings = validate_config({"server_name": "a.test", **raw}, config_dir=Path("/srv"))
    assert warnings == []
    return config


def load(**raw: object) -> FederationTransportConfig:
    return load_all(**raw).federation_transport


def test_defaults_block_private_ranges_and_verify_certificates() -> None:
    fed = load()
    assert fed.verify_certificates is True
    assert "127.0.0.0/8" in fed.federation_ip_range_blacklist
    assert fed.federation_ip_range_blacklist == DEFAULT_IP_RANGE_BLACKLIST
    assert fed.federation_ip_range_whitelist == ()
    assert fed.serve_server_wellknown is False


def test_federation_uses_the_general_lists_unless_its_own_is_given() -> None:
    fed = load(ip_range_blacklist=["10.0.0.0/8"], ip_range_whitelist=["10.1.0.0/16"])
    assert fed.federation_ip_range_blacklist == ("10.0.0.0/8",)
    assert fed.federation_ip_range_whitelist == ("10.1.0.0/16",)
    # The legacy key replaces both for federation, and no whitelist applies (Synapse).
    config = load_all(ip_range_whitelist=["127.0.0.1/8"], federation_ip_range_blacklist=[])
    assert config.federation_transport.federation_ip_range_blacklist == ()
    assert config.federation_transport.federation_ip_range_whitelist == ()
    assert config.ip_range_whitelist == ("127.0.0.1/8",)


def test_the_other_keys() -> None:
    fed = load(federation_verify_certificates=False, serve_server_wellknown=True)
    assert fed.verify_certificates is False
    assert fed.serve_server_wellknown is True


def test_bad_values_are_errors() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(
            {
                "server_name": "a.test",
                "ip_range_blacklist": ["10.0.0.0/8", "not-a-range"],
                "federation_ip_range_blacklist": "10.0.0.0/8",
            },
            config_dir=Path("/srv"),
        )
    assert info.value.errors == [
        "ip_range_blacklist: item 1: 'not-a-range' is not an IP address or CIDR range",
        "federation_ip_range_blacklist: must be a list of strings",
    ]
