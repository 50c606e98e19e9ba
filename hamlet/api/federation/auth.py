"""Who is calling: the `X-Matrix` check every authenticated federation route makes.

`authenticate_origin(req)` returns the origin server once its signature over
the method, URI (path and query as sent), origin, destination and JSON body
has been checked with a key of the origin valid now. As in Synapse: no
`X-Matrix` header is `401 M_UNAUTHORIZED`, a malformed one `400
M_UNAUTHORIZED`, a destination other than this tenant `401
M_UNAUTHORIZED`, an origin outside `federation_domain_whitelist` `403
M_FORBIDDEN` (checked before any key is fetched), and a signature that
cannot be checked or does not verify `401 M_UNAUTHORIZED`.
"""

from __future__ import annotations

import logging
from typing import Any

from hamlet.api.request import ApiRequest
from hamlet.core.errors import SignatureError
from hamlet.core.xmatrix import SCHEME, parse_header, request_json
from hamlet.handlers.common.errors import ForbiddenError, MatrixError

logger = logging.getLogger(__name__)

#: Methods whose JSON body is part of what the origin signs.
_METHODS_WITH_BODY = frozenset({"PUT", "POST"})


def _unauthorized(message: str, status: int = 401) -> MatrixError:
    return MatrixError(status, "M_UNAUTHORIZED", message)


async def authenticate_origin(req: ApiRequest) -> str:
    """The server that signed this request; raises the Matrix error above if none did."""
    # The first X-Matrix header counts: a server signs with one key.
    header = next(
        (
            value
            for value in req.http.headers.getall("Authorization", ())
            if value.startswith(SCHEME)
        ),
        None,
    )
    if header is None:
        raise _unauthorized("Missing Authorization headers")
    try:
        auth = parse_header(header)
    except SignatureError as exc:
        raise _unauthorized(f"Malformed Authorization header: {exc}", 400) from exc
    hs = req.hs
    if auth.destination is not None and auth.destination != hs.server_name:
        raise _unauthorized("Destination mismatch in auth header")
    whitelist = hs.config.federation_domain_whitelist
    if whitelist is not None and auth.origin not in whitelist:
        raise ForbiddenError(f"Federation denied with {auth.origin}.")
    content: Any | None = None
    if req.method in _METHODS_WITH_BODY:
        content = await req.json()
    signed = request_json(req.method, req.http.raw_path, auth.origin, hs.server_name, content)
    signed["signatures"] = {auth.origin: {auth.key_id: auth.signature}}
    await hs.keyring.verify_json_for_server(auth.origin, signed, hs.clock.time_msec())
    return auth.origin
