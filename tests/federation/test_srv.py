"""SRV lookups through dnspython against a DNS server on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import cast

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from hamlet.handlers.federation.discovery import SrvTarget
from hamlet.handlers.federation.srv import DnsSrvResolver

ZONE = {
    "_matrix-fed._tcp.example.test.": [
        "10 5 8448 fed1.example.test.",
        "20 0 8449 fed2.example.test.",
    ],
    "_matrix-fed._tcp.nothere.test.": [". "],
}


class DnsServer(asyncio.DatagramProtocol):
    """Answers SRV questions from ZONE; NXDOMAIN for anything else."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        query = dns.message.from_wire(data)
        response = dns.message.make_response(query)
        question = query.question[0]
        records = ZONE.get(question.name.to_text())
        if records is None:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif records != [". "]:
            response.answer.append(
                dns.rrset.from_text_list(question.name, 600, "IN", "SRV", records)
            )
        self.transport.sendto(response.to_wire(), addr)


@pytest.fixture
async def dns_port() -> AsyncIterator[int]:
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        DnsServer, local_addr=("127.0.0.1", 0)
    )
    yield int(transport.get_extra_info("sockname")[1])
    transport.close()


async def test_srv_records_and_their_ttl(dns_port: int) -> None:
    resolver = DnsSrvResolver(["127.0.0.1"], dns_port)
    targets, ttl = await resolver.resolve_srv("_matrix-fed._tcp.example.test")
    assert sorted(targets, key=lambda t: t.priority) == [
        SrvTarget("fed1.example.test", 8448, 10, 5),
        SrvTarget("fed2.example.test", 8449, 20, 0),
    ]
    assert ttl == 600.0


async def test_no_such_name_and_no_records_are_empty(dns_port: int) -> None:
    resolver = DnsSrvResolver(["127.0.0.1"], dns_port)
    assert await resolver.resolve_srv("_matrix-fed._tcp.unknown.test") == ([], 0.0)
    assert await resolver.resolve_srv("_matrix-fed._tcp.nothere.test") == ([], 0.0)
