"""Every HTTP connection the process accepts passes a `ConnectionGuard`.

One client must not hold the sockets everyone shares. The guard counts open
connections per peer IP and in all, and sits between the listening socket
and aiohttp's protocol: a connection over its IP's cap is accepted and
aborted at once (the cheapest way to free its file descriptor); at the
process-wide cap the IP holding the most connections gives one up, its
oldest, unless the newcomer's own IP is as greedy (then the newcomer goes).
A connection that has not sent a complete request head within the header
timeout is closed (slowloris); idle keep-alive connections are aiohttp's
`keepalive_timeout`, which also closes a later request head that never
completes.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import cast

from hamlet.runtime.clock import Clock, DelayedCall

logger = logging.getLogger(__name__)

_HEAD_END = b"\r\n\r\n"
# Kept for the open-file limit besides connections: database files, media,
# log files, the listening sockets themselves.
_FD_SHARE_FOR_CONNECTIONS = 0.75


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            logger.warning("Could not raise the open-file limit to %d: %s", target, e)
    return soft


def default_max_connections(open_file_limit: int) -> int:
    return max(16, int(open_file_limit * _FD_SHARE_FOR_CONNECTIONS))


class ConnectionGuard:
    def __init__(
        self,
        clock: Clock,
        *,
        max_connections: int,
        max_per_ip: int,
        header_timeout_s: float,
    ) -> None:
        self._clock = clock
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.header_timeout_s = header_timeout_s
        # Per IP, its connections oldest first (dicts keep insertion order).
        self._by_ip: dict[str, dict[GuardedConnection, None]] = {}
        self.open = 0
        self.refused = 0
        self.shed = 0
        self.timed_out = 0

    def wrap(self, make_protocol: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        """A protocol factory for `loop.create_server` that guards `make_protocol`'s."""
        return lambda: GuardedConnection(self, make_protocol)

    def connections_of(self, ip: str) -> int:
        return len(self._by_ip.get(ip, ()))

    def _admit(self, conn: GuardedConnection) -> bool:
        mine = self._by_ip.get(conn.ip)
        held = len(mine) if mine is not None else 0
        if held >= self.max_per_ip:
            self.refused += 1
            logger.debug("Refused a connection from %s: it holds %d", conn.ip, held)
            return False
        if self.open >= self.max_connections:
            greedy_ip, greedy = max(self._by_ip.items(), key=lambda item: len(item[1]))
            if len(greedy) <= held + 1:
                self.refused += 1
                logger.debug("Refused a connection from %s: %d open", conn.ip, self.open)
                return False
            self.shed += 1
            logger.debug("Shedding a connection of %s to admit %s", greedy_ip, conn.ip)
            next(iter(greedy)).close(abort=True)
        self._by_ip.setdefault(conn.ip, {})[conn] = None
        self.open += 1
        return True

    def _release(self, conn: GuardedConnection) -> None:
        mine = self._by_ip.get(conn.ip)
        if mine is None or conn not in mine:
            return
        del mine[conn]
        if not mine:
            del self._by_ip[conn.ip]
        self.open -= 1


class GuardedConnection(asyncio.Protocol):
    """Counts one connection and forwards everything to the real protocol,
    which is made only once the connection is admitted."""

    def __init__(self, guard: ConnectionGuard, make_protocol: Callable[[], asyncio.Protocol]):
        self._guard = guard
        self._make_protocol = make_protocol
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._head_timer: DelayedCall | None = None
        self._tail = b""
        self.ip = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.ip = str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)
        if not self._guard._admit(self):
            self._transport.abort()
            return
        if self._guard.header_timeout_s > 0:
            self._head_timer = self._guard._clock.call_later(
                self._guard.header_timeout_s, self._head_timed_out
            )
        self._inner = self._make_protocol()
        self._inner.connection_made(transport)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        self._guard.timed_out += 1
        logger.debug("Closing a connection from %s: no request head in time", self.ip)
        self.close(abort=True)

    def close(self, *, abort: bool) -> None:
        """Drop the connection now; it stops counting at once."""
        self._guard._release(self)
        if self._transport is not None:
            if abort:
                self._transport.abort()
            else:
                self._transport.close()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return
        if self._head_timer is not None:
            if _HEAD_END in self._tail + data[: len(_HEAD_END)] or _HEAD_END in data:
                self._head_timer.cancel()
                self._head_timer = None
            else:
                self._tail = (self._tail + data)[-(len(_HEAD_END) - 1) :]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard._release(self)
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if self._inner is not None:
            self._inner.connection_lost(exc)
