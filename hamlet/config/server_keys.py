"""Federation key settings, Synapse's keys: `trusted_key_servers`,
`old_signing_keys`, `key_refresh_interval`, `federation_domain_whitelist`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamlet.config._reader import Invalid, Section, parse_duration_ms
from hamlet.config.model import DEFAULT_KEY_REFRESH_INTERVAL_MS, TrustedKeyServer
from hamlet.core.crypto import decode_verify_key
from hamlet.core.errors import CoreError
from hamlet.core.ids import is_valid_server_name
from hamlet.core.server_keys import KEY_ID_RE, OldKey

#: Notaries worth asking in turn before the origin itself.
MAX_TRUSTED_KEY_SERVERS = 16
MAX_CONFIGURED_KEYS = 32
#: Servers a whitelist may name (it is a set looked up per request).
MAX_WHITELIST_ENTRIES = 100_000


def _key(key_id: Any, key_b64: Any) -> tuple[str, str]:
    if not isinstance(key_id, str) or not KEY_ID_RE.fullmatch(key_id):
        raise Invalid(f"{key_id!r} is not an ed25519 key ID (ed25519:<version>)")
    if not isinstance(key_b64, str):
        raise Invalid(f"{key_id}: the key must be a string")
    try:
        decode_verify_key(key_b64)
    except CoreError:
        raise Invalid(f"{key_id}: not an unpadded-base64 ed25519 public key") from None
    return key_id, key_b64


def _verify_keys(value: Any) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, Mapping) or not value:
        raise Invalid("must be a non-empty mapping of key ID to base64 public key")
    if len(value) > MAX_CONFIGURED_KEYS:
        raise Invalid(f"at most {MAX_CONFIGURED_KEYS} keys")
    return tuple(_key(k, v) for k, v in value.items())


def _server_name(value: Any) -> str:
    if not isinstance(value, str) or not is_valid_server_name(value):
        raise Invalid(f"{value!r} is not a server name")
    return value


def _old_signing_keys(value: Any) -> tuple[OldKey, ...]:
    if not isinstance(value, Mapping):
        raise Invalid("must be a mapping of key ID to {key, expired_ts}")
    if len(value) > MAX_CONFIGURED_KEYS:
        raise Invalid(f"at most {MAX_CONFIGURED_KEYS} keys")
    out = []
    for key_id, entry in value.items():
        if not isinstance(entry, Mapping):
            raise Invalid(f"{key_id}: must be a mapping with 'key' and 'expired_ts'")
        key_id, key_b64 = _key(key_id, entry.get("key"))
        expired_ts = entry.get("expired_ts")
        if isinstance(expired_ts, bool) or not isinstance(expired_ts, int) or expired_ts < 0:
            raise Invalid(f"{key_id}: expired_ts must be a timestamp in milliseconds")
        out.append(OldKey(key_id, key_b64, expired_ts))
    return tuple(out)


def _whitelist(value: Any) -> frozenset[str]:
    if not isinstance(value, list):
        raise Invalid("must be a list of server names")
    if len(value) > MAX_WHITELIST_ENTRIES:
        raise Invalid(f"at most {MAX_WHITELIST_ENTRIES} server names")
    return frozenset(_server_name(v) for v in value)


def _positive_duration(value: Any) -> int:
    ms = parse_duration_ms(value)
    if ms <= 0:
        raise Invalid("must be greater than zero")
    return ms


def trusted_key_servers(root: Section) -> tuple[TrustedKeyServer, ...]:
    sections = root.section_list("trusted_key_servers")
    if sections is None:
        return ()
    if len(sections) > MAX_TRUSTED_KEY_SERVERS:
        root.error("trusted_key_servers", f"at most {MAX_TRUSTED_KEY_SERVERS} notaries")
        return ()
    out = []
    for s in sections:
        name = s.require("server_name", _server_name)
        verify_keys = s.get("verify_keys", None, _verify_keys)
        # Synapse's escape hatch for notaries without verify_keys when
        # certificates are not checked; here such a notary's keys are
        # fetched from it, so the key is accepted and means nothing more.
        s.ignore("accept_keys_insecurely")
        if name is not None:
            out.append(TrustedKeyServer(name, verify_keys))
    return tuple(out)


def old_signing_keys(root: Section) -> tuple[OldKey, ...]:
    return root.get("old_signing_keys", (), _old_signing_keys)


def key_refresh_interval(root: Section) -> int:
    return root.get("key_refresh_interval", DEFAULT_KEY_REFRESH_INTERVAL_MS, _positive_duration)


def federation_domain_whitelist(root: Section) -> frozenset[str] | None:
    return root.get("federation_domain_whitelist", None, _whitelist)
