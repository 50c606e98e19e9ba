"""The `X-Matrix` authorization scheme of server-server requests.

A request is authenticated by signing a JSON object made of its method,
URI (path and query, as sent), origin, destination and JSON body; the
signature travels in the `Authorization` header. This module builds and
parses that header and signs and checks the object; fetching the origin's
keys is the caller's business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.signing

from hamlet.core.canonical_json import JsonDict
from hamlet.core.crypto import SigningKey, sign_json, verify_signed_json
from hamlet.core.errors import SignatureError
from hamlet.core.ids import is_valid_server_name

SCHEME = "X-Matrix"
#: A header longer than this is not a signature we would make or accept.
MAX_HEADER_LENGTH = 2048
_PARAM_RE = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s"]*)\s*(?:,|$)')
_KEY_ID_RE = re.compile(r"^ed25519:[a-zA-Z0-9_]+$")


@dataclass(frozen=True, slots=True)
class XMatrixAuth:
    """The parts of one `X-Matrix` header."""

    origin: str
    key_id: str
    signature: str
    destination: str | None


def request_json(
    method: str, uri: str, origin: str, destination: str, content: Any | None
) -> JsonDict:
    """The object whose signature authenticates a request."""
    obj: JsonDict = {
        "method": method.upper(),
        "uri": uri,
        "origin": origin,
        "destination": destination,
    }
    if content is not None:
        obj["content"] = content
    return obj


def sign_request(
    *,
    method: str,
    uri: str,
    origin: str,
    destination: str,
    content: Any | None,
    signing_key: SigningKey,
) -> str:
    """The `Authorization` header value for a request `origin` sends."""
    signed = sign_json(request_json(method, uri, origin, destination, content), origin, signing_key)
    signature = signed["signatures"][origin][signing_key.key_id]
    return (
        f'{SCHEME} origin="{origin}",destination="{destination}",'
        f'key="{signing_key.key_id}",sig="{signature}"'
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_header(header: str) -> XMatrixAuth:
    """Parse an `Authorization: X-Matrix ...` value; SignatureError if it is not one."""
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError("Authorization header too long")
    scheme, _, rest = header.strip().partition(" ")
    if scheme != SCHEME:
        raise SignatureError("not an X-Matrix Authorization header")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if match is None or match.end() == pos:
            raise SignatureError("malformed X-Matrix Authorization header")
        # Parameter names are case-insensitive (RFC 9110); repeats are refused.
        name = match.group(1).lower()
        if name in params:
            raise SignatureError(f"repeated {name!r} in X-Matrix header")
        params[name] = _unquote(match.group(2))
        pos = match.end()
    origin, key_id, sig = params.get("origin"), params.get("key"), params.get("sig")
    if not origin or not key_id or not sig:
        raise SignatureError("X-Matrix header needs origin, key and sig")
    if not is_valid_server_name(origin):
        raise SignatureError("X-Matrix origin is not a server name")
    if not _KEY_ID_RE.match(key_id):
        raise SignatureError("X-Matrix key is not an ed25519 key ID")
    return XMatrixAuth(
        origin=origin, key_id=key_id, signature=sig, destination=params.get("destination")
    )


def verify_request(
    auth: XMatrixAuth,
    *,
    method: str,
    uri: str,
    destination: str,
    content: Any | None,
    verify_key: nacl.signing.VerifyKey | str,
) -> None:
    """Check `auth` signs this request for `destination`; SignatureError if not."""
    if auth.destination is not None and auth.destination != destination:
        raise SignatureError("X-Matrix destination is not this server")
    obj: Mapping[str, Any] = request_json(method, uri, auth.origin, destination, content)
    signed = {**obj, "signatures": {auth.origin: {auth.key_id: auth.signature}}}
    verify_signed_json(signed, auth.origin, {auth.key_id: verify_key})
