"""The outbound client's address filter: Synapse's blacklist/whitelist semantics."""

from __future__ import annotations

import pytest

from hamlet.config.model import DEFAULT_IP_RANGE_BLACKLIST
from hamlet.runtime.clock import Clock
from hamlet.runtime.http_client import BlockedAddressError, HttpClient, IpRangeFilter


def test_filter() -> None:
    f = IpRangeFilter.parse(DEFAULT_IP_RANGE_BLACKLIST, ["10.1.0.0/16"])
    assert not f.allows("127.0.0.1")
    assert not f.allows("10.0.0.1")
    assert f.allows("10.1.2.3")
    assert not f.allows("::1")
    assert not f.allows("::ffff:127.0.0.1")  # IPv4-mapped: judged as IPv4
    assert not f.allows("0.0.0.0")
    assert not f.allows("fe80::1%eth0")
    assert f.allows("8.8.8.8")
    assert not f.allows("not an address")


async def test_literal_address_refused_before_connecting() -> None:
    client = HttpClient()
    clock = Clock("test")
    try:
        with pytest.raises(BlockedAddressError):
            await client.request(
                "POST",
                "http://[::1]:1/x",
                clock=clock,
                timeout_s=5,
                ip_filter=IpRangeFilter.parse(DEFAULT_IP_RANGE_BLACKLIST),
            )
    finally:
        await client.close()
        await clock.shutdown()
