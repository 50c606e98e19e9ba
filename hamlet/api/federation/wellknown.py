"""`GET /.well-known/matrix/server`: delegate federation to where `public_baseurl` points.

Served only with `serve_server_wellknown: true`, as in Synapse; the port is
the baseurl's, else 443 (federation is always HTTPS).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from hamlet.api.request import ApiRequest
from hamlet.api.router import Router
from hamlet.handlers.common.errors import UnrecognizedError


async def well_known_server(req: ApiRequest) -> dict[str, Any]:
    config = req.hs.config
    if not config.federation_transport.serve_server_wellknown:
        raise UnrecognizedError(404)
    url = urlsplit(config.public_baseurl)
    host = f"[{url.hostname}]" if url.hostname and ":" in url.hostname else url.hostname
    return {"m.server": f"{host}:{url.port or 443}"}


def register(router: Router) -> None:
    router.add("GET", "/.well-known/matrix/server", well_known_server)
