"""What a route handler sees of one HTTP request."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from multidict import MultiMapping

from hamlet.core.canonical_json import MAX_SAFE_INTEGER, MIN_SAFE_INTEGER, nesting_depth
from hamlet.handlers.common.errors import AuthError, BadJsonError, MatrixError, TooLargeError
from hamlet.handlers.common.requester import ClientInfo, Requester

#: Levels of objects and arrays a request's JSON may have. What clients
#: send comes back embedded in envelopes (a /sync response puts event
#: content about 8 levels down, a bundled edit inside a thread summary
#: about 20) and is stored and re-encoded by orjson, which stops at 254;
#: canonical JSON (events) stops there too. 100 leaves room for every
#: envelope, and is far beyond what any Matrix payload needs. (The spec is
#: silent; Synapse's parser allows what Python's recursion limit does.)
MAX_JSON_DEPTH = 100


_INTEGER = re.compile(r"-?[0-9]{1,16}")


def parse_int(text: str) -> int | None:
    """`text` as a decimal integer within +-(2^53 - 1), or None."""
    if _INTEGER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if MIN_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER else None


def parse_json(raw: bytes | str) -> Any:
    """JSON from a client: 400 M_NOT_JSON if it is none, M_BAD_JSON if
    nested deeper than `MAX_JSON_DEPTH`."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MatrixError(400, "M_NOT_JSON", "Content not JSON.") from None
    if nesting_depth(value, stop_above=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise BadJsonError(f"JSON must not be nested more than {MAX_JSON_DEPTH} levels deep")
    return value


if TYPE_CHECKING:
    from hamlet.homeserver import HomeServer


@dataclass(slots=True)
class ApiRequest:
    hs: HomeServer
    http: web.Request
    params: dict[str, str]
    client_ip: str
    requester: Requester | None = None
    _body: bytes | None = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return self.http.method

    @property
    def query(self) -> MultiMapping[str]:
        return self.http.query

    def access_token(self) -> str | None:
        """The `Authorization: Bearer` token, else the `access_token` query parameter.

        Both at once is `401 M_MISSING_TOKEN`, as in Synapse: a proxy or log
        that strips one must not leave the request authenticated as the other.
        """
        header = self.http.headers.get("Authorization")
        if header is not None:
            if "access_token" in self.http.query:
                raise AuthError(
                    "M_MISSING_TOKEN",
                    "Mixing Authorization headers and access_token query parameters.",
                )
            scheme, _, token = header.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
            return None
        return self.http.query.get("access_token")

    def client_info(self) -> ClientInfo:
        return ClientInfo(
            access_token=self.access_token(),
            ip=self.client_ip,
            user_agent=self.http.headers.get("User-Agent"),
            assert_user_id=self.http.query.get("user_id"),
            assert_device_id=self.http.query.get("org.matrix.msc3202.device_id")
            or self.http.query.get("device_id"),
        )

    async def authenticate(self, *, allow_guest: bool = False) -> Requester:
        """The requester behind this request (401/403 as `AuthHandler` decides).

        Also remembers it on `requester`, so the access log names the user.
        """
        requester = await self.hs.auth.get_user_by_req(self.client_info(), allow_guest=allow_guest)
        self.requester = requester
        return requester

    async def body(self) -> bytes:
        if self._body is None:
            limit = self.hs.config.max_request_body_size
            if self.http.content_length is not None and self.http.content_length > limit:
                raise TooLargeError()
            chunks = []
            size = 0
            async for chunk in self.http.content.iter_chunked(65536):
                size += len(chunk)
                if size > limit:
                    raise TooLargeError()
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def stream_body(self, limit: int) -> AsyncIterator[bytes]:
        """The body in chunks as they arrive, for uploads bigger than `body()` allows.

        Raises `TooLargeError` as soon as the body is known to exceed `limit`.
        """
        if self.http.content_length is not None and self.http.content_length > limit:
            raise TooLargeError("Upload request body is too large")
        size = 0
        async for chunk in self.http.content.iter_chunked(65536):
            size += len(chunk)
            if size > limit:
                raise TooLargeError("Upload request body is too large")
            yield chunk

    async def json(self) -> Any:
        return parse_json(await self.body())

    async def json_object(self, *, allow_empty: bool = False) -> dict[str, Any]:
        """The body as a JSON object; an empty body is `{}` when allowed."""
        if allow_empty and not (await self.body()).strip():
            return {}
        value = await self.json()
        if not isinstance(value, dict):
            raise BadJsonError("Content must be a JSON object.")
        return value

    def query_int(self, name: str, default: int | None = None) -> int | None:
        """An integer query parameter: ASCII digits with an optional minus,
        within what JSON (and every integer column) holds exactly; anything
        else is 400 M_INVALID_PARAM rather than an overflow further down.
        Callers still check the range their parameter means."""
        raw = self.http.query.get(name)
        if raw is None:
            return default
        value = parse_int(raw)
        if value is None:
            raise MatrixError(
                400,
                "M_INVALID_PARAM",
                f"Query parameter {name!r} must be an integer of at most 2^53 - 1",
            )
        return value

    def query_bool(self, name: str, default: bool = False) -> bool:
        raw = self.http.query.get(name)
        if raw is None:
            return default
        if raw in ("true", "1"):
            return True
        if raw in ("false", "0"):
            return False
        raise MatrixError(400, "M_INVALID_PARAM", f"Query parameter {name!r} must be a boolean")
