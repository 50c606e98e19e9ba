"""Server key responses (`/_matrix/key/v2/server`): built, parsed and checked.

A homeserver publishes its current keys (`verify_keys`, valid for requests
and events until `valid_until_ts`) and the keys it used to have
(`old_verify_keys`, valid for events sent before their `expired_ts`), in an
object signed by itself. This module builds that object for a local server
and turns a remote one into checked keys; fetching and caching are the
keyring's business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.signing

from hamlet.core.canonical_json import JsonDict, encode_canonical_json
from hamlet.core.crypto import (
    ED25519,
    SigningKey,
    decode_verify_key,
    sign_json,
    verify_key_base64,
    verify_signed_json,
)
from hamlet.core.errors import CoreError, SignatureError

#: The spec's cap on how far ahead a key may be trusted, whatever
#: `valid_until_ts` says, so a stolen key cannot be published for years.
MAX_KEY_VALIDITY_MS = 7 * 24 * 3600 * 1000
#: Keys (current plus old) one response may list. Real servers list one or
#: two; a bound keeps a hostile response from filling the cache.
MAX_KEYS_PER_RESPONSE = 32
#: Canonical size a key response may have (a real one is well under 2 KiB).
MAX_KEY_RESPONSE_BYTES = 16 * 1024

KEY_ID_RE = re.compile(r"^ed25519:[a-zA-Z0-9_]+$")
_MAX_TS = 2**53 - 1


class KeyResponseError(CoreError):
    """A key response is malformed, for the wrong server, or not self-signed."""


@dataclass(frozen=True, slots=True)
class PublishedKey:
    """One verify key as a server published it.

    `valid_until_ts` is when it stops being valid: for a current key the
    response's `valid_until_ts` capped at `MAX_KEY_VALIDITY_MS` after it was
    fetched, for an old key its `expired_ts`.
    """

    key_id: str
    key: nacl.signing.VerifyKey
    key_base64: str
    valid_until_ts: int
    expired_ts: int | None = None


@dataclass(frozen=True, slots=True)
class ServerKeys:
    """A checked key response of `server_name`, with the object itself kept
    (signatures included) so a notary can pass it on unchanged."""

    server_name: str
    valid_until_ts: int
    keys: dict[str, PublishedKey]
    response: JsonDict


@dataclass(frozen=True, slots=True)
class OldKey:
    """A key this server no longer signs with, as `old_signing_keys` lists it."""

    key_id: str
    key_base64: str
    expired_ts: int


def build_key_response(
    server_name: str,
    signing_key: SigningKey,
    old_keys: tuple[OldKey, ...],
    valid_until_ts: int,
) -> JsonDict:
    """This server's `/_matrix/key/v2/server` object, signed with `signing_key`."""
    response: JsonDict = {
        "server_name": server_name,
        "valid_until_ts": valid_until_ts,
        "verify_keys": {signing_key.key_id: {"key": verify_key_base64(signing_key)}},
        "old_verify_keys": {
            old.key_id: {"key": old.key_base64, "expired_ts": old.expired_ts}
            for old in old_keys
            if old.key_id != signing_key.key_id
        },
    }
    return sign_json(response, server_name, signing_key)


def _timestamp(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_TS:
        raise KeyResponseError(f"{what} must be a timestamp")
    return value


def _key_entries(obj: Mapping[str, Any], field: str) -> list[tuple[str, Mapping[str, Any]]]:
    entries = obj.get(field, {})
    if not isinstance(entries, Mapping):
        raise KeyResponseError(f"{field} must be an object")
    out = []
    for key_id, entry in entries.items():
        if not isinstance(key_id, str) or not isinstance(entry, Mapping):
            raise KeyResponseError(f"{field} entries must be objects")
        # Keys of algorithms we do not implement are skipped, not refused:
        # a server may publish them next to its ed25519 key.
        if key_id.startswith(ED25519 + ":"):
            if not KEY_ID_RE.match(key_id):
                raise KeyResponseError(f"bad key ID {key_id!r}")
            out.append((key_id, entry))
    return out


def _decode(key_id: str, entry: Mapping[str, Any]) -> tuple[nacl.signing.VerifyKey, str]:
    key_b64 = entry.get("key")
    if not isinstance(key_b64, str):
        raise KeyResponseError(f"{key_id} has no key")
    try:
        return decode_verify_key(key_b64), key_b64
    except CoreError as exc:
        raise KeyResponseError(f"{key_id} is not an ed25519 key") from exc


def parse_key_response(obj: Any, server_name: str, now_ms: int) -> ServerKeys:
    """Check a `/_matrix/key/v2/server` object claimed to be `server_name`'s.

    It must be canonical JSON of at most `MAX_KEY_RESPONSE_BYTES`, name
    `server_name`, list at most `MAX_KEYS_PER_RESPONSE` keys,
    and be signed by `server_name` with one of its current keys (other
    signatures, a notary's, are left to the caller). Raises
    `KeyResponseError`.
    """
    if not isinstance(obj, Mapping):
        raise KeyResponseError("key response is not an object")
    try:
        size = len(encode_canonical_json(obj))
    except CoreError as exc:
        raise KeyResponseError(f"key response is not canonical JSON: {exc}") from exc
    if size > MAX_KEY_RESPONSE_BYTES:
        raise KeyResponseError(f"key response is {size} bytes, more than {MAX_KEY_RESPONSE_BYTES}")
    if obj.get("server_name") != server_name:
        raise KeyResponseError(f"key response is not for {server_name}")
    valid_until_ts = _timestamp(obj.get("valid_until_ts"), "valid_until_ts")
    current = _key_entries(obj, "verify_keys")
    old = _key_entries(obj, "old_verify_keys")
    if len(current) + len(old) > MAX_KEYS_PER_RESPONSE:
        raise KeyResponseError(f"key response lists more than {MAX_KEYS_PER_RESPONSE} keys")
    trusted_until = min(valid_until_ts, now_ms + MAX_KEY_VALIDITY_MS)
    keys: dict[str, PublishedKey] = {}
    for key_id, entry in old:
        key, key_b64 = _decode(key_id, entry)
        expired_ts = _timestamp(entry.get("expired_ts"), f"{key_id} expired_ts")
        keys[key_id] = PublishedKey(key_id, key, key_b64, expired_ts, expired_ts)
    # A key listed as both current and old is current: the server signs with it.
    for key_id, entry in current:
        key, key_b64 = _decode(key_id, entry)
        keys[key_id] = PublishedKey(key_id, key, key_b64, trusted_until)
    self_keys = {k.key_id: k.key for k in keys.values() if k.expired_ts is None}
    try:
        verify_signed_json(obj, server_name, self_keys)
    except SignatureError as exc:
        raise KeyResponseError(f"key response is not signed by {server_name}: {exc}") from exc
    return ServerKeys(server_name, trusted_until, keys, dict(obj))
