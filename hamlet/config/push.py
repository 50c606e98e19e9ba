"""Push gateways' keys: Synapse's `push:` section and the outbound IP ranges."""

from __future__ import annotations

import ipaddress
from typing import Any

from hamlet.config._reader import Invalid, Section, to_str_tuple
from hamlet.config.model import DEFAULT_IP_RANGE_BLACKLIST, PushConfig


def to_networks(value: Any) -> tuple[str, ...]:
    networks = to_str_tuple(value)
    for i, network in enumerate(networks):
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise Invalid(f"item {i}: {network!r} is not an IP address or CIDR range") from None
    return networks


def ip_ranges(root: Section) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(ip_range_blacklist, ip_range_whitelist)."""
    return (
        root.get("ip_range_blacklist", DEFAULT_IP_RANGE_BLACKLIST, to_networks),
        root.get("ip_range_whitelist", (), to_networks),
    )


def push_config(root: Section) -> PushConfig:
    d = PushConfig()
    s = root.section("push")
    if s is None:
        return d
    if s.has("jitter_delay"):
        s.unsupported("jitter_delay", "notifications are sent as soon as they are evaluated")
    return PushConfig(
        enabled=s.bool_("enabled", d.enabled),
        include_content=s.bool_("include_content", d.include_content),
        group_unread_count_by_room=s.bool_(
            "group_unread_count_by_room", d.group_unread_count_by_room
        ),
        max_pushers_per_user=s.int_("max_pushers_per_user", d.max_pushers_per_user, 1, 10_000),
    )
