"""Listening sockets: bound before anything else starts, served outside any logging context.

`hamlet serve` binds every configured port before it opens a database or
runs a migration, so a port in use is one line at once rather than a
traceback after all the work. A bound socket is then served by a
`GuardedSite`, whose connections pass the process's `ConnectionGuard` and
whose server is opened in no logging context (see `in_sentinel_context`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from hamlet.host.connections import ConnectionGuard
from hamlet.runtime.logcontext import in_sentinel_context

# A deeper accept queue: a flood is shed after accept, not in the kernel.
BACKLOG = 1024


class _QuietBadRequests(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, minus the traceback at ERROR for each malformed request.

    Any client can send one, so each is one INFO line naming the client and
    the fault; a failure of ours still logs its traceback.
    """

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            remote = args[0] if args else "-"
            self.info("Malformed HTTP request from %s: %s", remote, exc.message)
            return
        super().exception(msg, *args, **kwargs)


#: What every runner's protocol logs through.
SERVER_LOGGER = _QuietBadRequests(logging.getLogger("aiohttp.server"), {})


class ListenError(OSError):
    """A port that cannot be listened on; the message is the whole story."""


def bind_sockets(address: str, port: int) -> list[socket.socket]:
    """Listening-ready sockets for every address `address` resolves to, as asyncio binds them."""
    try:
        infos = socket.getaddrinfo(
            address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as e:
        raise ListenError(f"cannot listen on {address}:{port}: {e.strerror}") from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _name, sockaddr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(sockaddr)
            except OSError as e:
                raise ListenError(f"cannot listen on {address}:{port}: {e.strerror}") from None
    except BaseException:
        for sock in bound:
            sock.close()
        raise
    return bound


def server_tls_context(certificate: Path, private_key: Path) -> ssl.SSLContext:
    """The context `tls: true` listeners serve with (blocking: reads the files).

    ListenError, one line, if the files cannot be read or do not match.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certificate, private_key)
    except (OSError, ssl.SSLError) as e:
        raise ListenError(f"cannot load TLS certificate {certificate} and key: {e}") from None
    return context


class GuardedSite(web.BaseSite):
    """Serves one bound socket (over TLS with a context); its connections pass the
    process's `ConnectionGuard`."""

    __slots__ = ("_guard", "_sock")

    def __init__(
        self,
        runner: web.AppRunner,
        sock: socket.socket,
        guard: ConnectionGuard,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(runner, backlog=BACKLOG, ssl_context=tls)
        self._sock = sock
        self._guard = guard

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}"

    async def start(self) -> None:
        await super().start()  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        serve = functools.partial(
            loop.create_server,
            self._guard.wrap(server),
            sock=self._sock,
            backlog=self._backlog,
            ssl=self._ssl_context,
        )
        self._server = await in_sentinel_context(serve)
