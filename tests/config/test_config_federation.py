"""The `federation:` section: Synapse's retry keys, durations, bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hamlet.config import ConfigError, validate_config
from hamlet.config.model import FederationConfig


def parse(section: dict[str, Any]) -> FederationConfig:
    config, warnings = validate_config(
        {"server_name": "example.com", "federation": section}, config_dir=Path("/etc/hamlet")
    )
    assert warnings == []
    return config.federation


def errors(section: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        validate_config(
            {"server_name": "example.com", "federation": section}, config_dir=Path("/etc/hamlet")
        )
    return info.value.errors


def test_synapse_defaults() -> None:
    c, _ = validate_config({"server_name": "example.com"}, config_dir=Path("/etc/hamlet"))
    f = c.federation
    assert (f.client_timeout, f.max_short_retry_delay, f.max_long_retry_delay) == (
        60_000,
        2_000,
        60_000,
    )
    assert (f.max_short_retries, f.max_long_retries) == (3, 10)
    assert f.destination_min_retry_interval == 600_000
    assert f.destination_retry_multiplier == 2
    assert f.destination_max_retry_interval == 7 * 24 * 3600_000
    assert c.limits.max_concurrent_federation_transactions == 10


def test_synapse_example() -> None:
    f = parse(
        {
            "client_timeout": "180s",
            "max_short_retry_delay": "7s",
            "max_long_retry_delay": "100s",
            "max_short_retries": 5,
            "max_long_retries": 20,
            "destination_min_retry_interval": "30s",
            "destination_retry_multiplier": 5,
            "destination_max_retry_interval": "12h",
        }
    )
    assert f == FederationConfig(180_000, 7_000, 100_000, 5, 20, 30_000, 5.0, 12 * 3600_000)


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"client_timeout": 0}, "federation.client_timeout"),
        ({"client_timeout": "soon"}, "federation.client_timeout"),
        ({"max_long_retries": -1}, "federation.max_long_retries"),
        ({"max_long_retries": 1000}, "federation.max_long_retries"),
        ({"destination_retry_multiplier": 0.5}, "federation.destination_retry_multiplier"),
        ({"destination_min_retry_interval": "400d"}, "federation.destination_min_retry_interval"),
        (
            {"destination_min_retry_interval": "1h", "destination_max_retry_interval": "1m"},
            "federation.destination_max_retry_interval",
        ),
    ],
)
def test_bad_values(section: dict[str, Any], key: str) -> None:
    assert any(e.startswith(key) for e in errors(section)), errors(section)
