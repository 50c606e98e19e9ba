"""Hashes and ed25519 signatures for JSON objects and events.

Signing keys are :class:`SigningKey`: a PyNaCl key plus its version.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

from hamlet.core.canonical_json import JsonDict, encode_canonical_json
from hamlet.core.errors import EventFormatError, SignatureError
from hamlet.core.unpadded_base64 import decode_base64, encode_base64, encode_base64_urlsafe

ED25519 = "ed25519"
_KEY_VERSION_RE = re.compile(r"^[a-zA-Z0-9_]+$")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An ed25519 signing key with its version (the part after ``ed25519:``)."""

    version: str
    nacl_key: nacl.signing.SigningKey
    alg: str = ED25519

    @property
    def key_id(self) -> str:
        """The signing key identifier, e.g. ``ed25519:a_AbCd``."""
        return f"{self.alg}:{self.version}"

    @property
    def verify_key(self) -> nacl.signing.VerifyKey:
        return self.nacl_key.verify_key

    @property
    def seed(self) -> bytes:
        """The 32-byte private seed."""
        return bytes(self.nacl_key.encode())

    def sign(self, message: bytes) -> bytes:
        """The 64-byte detached signature of ``message``."""
        return bytes(self.nacl_key.sign(message).signature)


def signing_key_from_seed(seed: bytes, version: str) -> SigningKey:
    """Build an ed25519 signing key from its 32-byte seed, named ``ed25519:<version>``."""
    if not _KEY_VERSION_RE.match(version):
        raise EventFormatError(f"invalid key version {version!r}")
    if len(seed) != 32:
        raise EventFormatError("ed25519 seed must be 32 bytes")
    return SigningKey(version=version, nacl_key=nacl.signing.SigningKey(seed))


def generate_signing_key(version: str | None = None) -> SigningKey:
    """A fresh random ed25519 key; the version defaults to ``a_`` + 4 random letters."""
    if version is None:
        alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        version = "a_" + "".join(secrets.choice(alphabet) for _ in range(4))
    return signing_key_from_seed(secrets.token_bytes(32), version)


def verify_key_base64(signing_key: SigningKey) -> str:
    """The public (verify) key as unpadded base64, as published in server keys."""
    return encode_base64(bytes(signing_key.verify_key))


def decode_verify_key(key_b64: str) -> nacl.signing.VerifyKey:
    """Parse an unpadded-base64 ed25519 public key."""
    raw = decode_base64(key_b64)
    if len(raw) != 32:
        raise SignatureError("ed25519 verify key must be 32 bytes")
    return nacl.signing.VerifyKey(raw)


# --- Synapse signing-key file format: "ed25519 <version> <base64 seed>" per line ---


def read_signing_keys(text: str) -> list[SigningKey]:
    """Parse the Synapse signing-key file format (one key per non-empty line)."""
    keys: list[SigningKey] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise EventFormatError(f"signing key line {lineno}: expected 3 fields")
        alg, version, seed_b64 = parts
        if alg != ED25519:
            raise EventFormatError(f"signing key line {lineno}: unsupported algorithm {alg!r}")
        seed = decode_base64(seed_b64)
        if len(seed) != 32:
            raise EventFormatError(f"signing key line {lineno}: seed must be 32 bytes")
        keys.append(signing_key_from_seed(seed, version))
    return keys


def write_signing_keys(keys: list[SigningKey]) -> str:
    """Serialise keys in the Synapse signing-key file format."""
    return "".join(f"{k.alg} {k.version} {encode_base64(k.seed)}\n" for k in keys)


# --- JSON signing ---


def _strip_for_signing(obj: Mapping[str, Any]) -> JsonDict:
    return {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}


def sign_json(obj: Mapping[str, Any], server_name: str, signing_key: SigningKey) -> JsonDict:
    """Return a copy of ``obj`` with this server's signature added under ``signatures``.

    The signature covers the canonical JSON of ``obj`` without ``signatures``
    and ``unsigned``; other servers' signatures are kept.
    """
    message = encode_canonical_json(_strip_for_signing(obj))
    signature = encode_base64(signing_key.sign(message))
    out = dict(obj)
    signatures = {name: dict(sigs) for name, sigs in dict(obj.get("signatures", {})).items()}
    signatures.setdefault(server_name, {})[signing_key.key_id] = signature
    out["signatures"] = signatures
    return out


def verify_signed_json(
    obj: Mapping[str, Any],
    server_name: str,
    verify_keys: Mapping[str, nacl.signing.VerifyKey | str],
) -> None:
    """Check that ``server_name`` signed ``obj`` with one of ``verify_keys``.

    ``verify_keys`` maps key ids (``ed25519:abc``) to a ``VerifyKey`` or its
    unpadded base64. At least one key id present in both the object's
    signatures and ``verify_keys`` must verify, and none of those may fail.
    Raises :class:`SignatureError` otherwise.
    """
    signatures = obj.get("signatures")
    if not isinstance(signatures, Mapping):
        raise SignatureError("no signatures")
    server_sigs = signatures.get(server_name)
    if not isinstance(server_sigs, Mapping) or not server_sigs:
        raise SignatureError(f"not signed by {server_name}")
    message = encode_canonical_json(_strip_for_signing(obj))
    checked = 0
    for kid, sig_b64 in server_sigs.items():
        if not isinstance(kid, str) or not kid.startswith(ED25519 + ":"):
            continue
        key = verify_keys.get(kid)
        if key is None:
            continue
        if isinstance(key, str):
            key = decode_verify_key(key)
        if not isinstance(sig_b64, str):
            raise SignatureError(f"malformed signature for {kid}")
        try:
            key.verify(message, decode_base64(sig_b64))
        except (nacl.exceptions.BadSignatureError, EventFormatError, ValueError) as exc:
            raise SignatureError(f"bad signature from {server_name} with {kid}") from exc
        checked += 1
    if not checked:
        raise SignatureError(f"no known key for {server_name} among its signatures")


# --- hashes ---


def compute_content_hash(event: Mapping[str, Any]) -> bytes:
    """SHA-256 of the event without ``unsigned``, ``signatures`` and ``hashes``."""
    stripped = {k: v for k, v in event.items() if k not in ("unsigned", "signatures", "hashes")}
    return hashlib.sha256(encode_canonical_json(stripped)).digest()


def content_hash_base64(event: Mapping[str, Any]) -> str:
    """The value for ``hashes.sha256``: unpadded standard base64."""
    return encode_base64(compute_content_hash(event))


def check_content_hash(event: Mapping[str, Any]) -> bool:
    """True when ``hashes.sha256`` matches the event's content."""
    hashes = event.get("hashes")
    if not isinstance(hashes, Mapping) or not isinstance(hashes.get("sha256"), str):
        return False
    try:
        expected = decode_base64(hashes["sha256"])
    except EventFormatError:
        return False
    return secrets.compare_digest(expected, compute_content_hash(event))


def compute_reference_hash(redacted_event: Mapping[str, Any]) -> bytes:
    """SHA-256 of an *already redacted* event without ``signatures``/``unsigned``."""
    stripped = {k: v for k, v in redacted_event.items() if k not in ("signatures", "unsigned")}
    return hashlib.sha256(encode_canonical_json(stripped)).digest()


def event_id_from_reference_hash(ref_hash: bytes) -> str:
    """Event ID for room versions 4+: ``$`` + URL-safe unpadded base64."""
    return "$" + encode_base64_urlsafe(ref_hash)
