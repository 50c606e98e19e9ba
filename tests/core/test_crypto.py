"""Base64, JSON signing and event hashing against the appendix test vectors."""

from __future__ import annotations

from typing import Any

import pytest

from hamlet.core.crypto import (
    check_content_hash,
    content_hash_base64,
    generate_signing_key,
    read_signing_keys,
    sign_json,
    signing_key_from_seed,
    verify_key_base64,
    verify_signed_json,
    write_signing_keys,
)
from hamlet.core.errors import EventFormatError, SignatureError
from hamlet.core.events import add_hashes_and_signatures, verify_event_signature
from hamlet.core.room_versions import KNOWN_ROOM_VERSIONS
from hamlet.core.unpadded_base64 import decode_base64, encode_base64, encode_base64_urlsafe

SEED = decode_base64("YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1")
KEY = signing_key_from_seed(SEED, "1")
V10 = KNOWN_ROOM_VERSIONS["10"]


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        (b"", ""),
        (b"f", "Zg"),
        (b"fo", "Zm8"),
        (b"foo", "Zm9v"),
        (b"foob", "Zm9vYg"),
        (b"fooba", "Zm9vYmE"),
        (b"foobar", "Zm9vYmFy"),
    ],
)
def test_unpadded_base64_examples(raw: bytes, encoded: str) -> None:
    assert encode_base64(raw) == encoded
    assert decode_base64(encoded) == raw
    assert decode_base64(encoded + "=" * (-len(encoded) % 4)) == raw


def test_urlsafe_base64() -> None:
    data = bytes([0xFB, 0xFF, 0xBF])
    assert encode_base64(data) == "+/+/"
    assert encode_base64_urlsafe(data) == "-_-_"
    assert decode_base64("-_-_") == data


@pytest.mark.parametrize("bad", ["a", "ab!c", "Zm9v+-"])
def test_bad_base64_rejected(bad: str) -> None:
    with pytest.raises(EventFormatError):
        decode_base64(bad)


def test_sign_empty_object_vector() -> None:
    assert sign_json({}, "domain", KEY) == {
        "signatures": {
            "domain": {
                "ed25519:1": "K8280/U9SSy9IVtjBuVeLr+HpOB4BQFWbg+UZaADMtTdGYI7Geitb76LTrr5QV/"
                "7Xg4ahLwYGYZzuHGZKM5ZAQ"
            }
        }
    }


def test_sign_object_with_data_vector() -> None:
    signed = sign_json({"one": 1, "two": "Two"}, "domain", KEY)
    assert signed == {
        "one": 1,
        "signatures": {
            "domain": {
                "ed25519:1": "KqmLSbO39/Bzb0QIYE82zqLwsA+PDzYIpIRA2sRQ4sL53+sN6/fpNSoqE7BP7vBZ"
                "hG6kYdD13EIMJpvhJI+6Bw"
            }
        },
        "two": "Two",
    }
    verify_signed_json(signed, "domain", {"ed25519:1": KEY.verify_key})
    verify_signed_json(signed, "domain", {"ed25519:1": verify_key_base64(KEY)})


def test_signature_ignores_unsigned_and_keeps_other_signatures() -> None:
    obj: dict[str, Any] = {
        "a": 1,
        "unsigned": {"age_ts": 5},
        "signatures": {"other": {"ed25519:x": "abc"}},
    }
    signed = sign_json(obj, "domain", KEY)
    assert signed["unsigned"] == {"age_ts": 5}
    assert signed["signatures"]["other"] == {"ed25519:x": "abc"}
    assert "signatures" in obj and "domain" not in obj["signatures"]  # input untouched
    signed["unsigned"]["age_ts"] = 99
    verify_signed_json(signed, "domain", {"ed25519:1": KEY.verify_key})


def test_verify_failures() -> None:
    signed = sign_json({"a": 1}, "domain", KEY)
    other = generate_signing_key("1")
    with pytest.raises(SignatureError):
        verify_signed_json(signed, "domain", {"ed25519:1": other.verify_key})
    with pytest.raises(SignatureError):
        verify_signed_json(signed, "elsewhere", {"ed25519:1": KEY.verify_key})
    with pytest.raises(SignatureError):
        verify_signed_json(signed, "domain", {"ed25519:2": KEY.verify_key})
    tampered = dict(signed, a=2)
    with pytest.raises(SignatureError):
        verify_signed_json(tampered, "domain", {"ed25519:1": KEY.verify_key})
    with pytest.raises(SignatureError):
        verify_signed_json({"a": 1}, "domain", {"ed25519:1": KEY.verify_key})


def test_event_signing_minimal_vector() -> None:
    event: dict[str, Any] = {
        "room_id": "!x:domain",
        "sender": "@a:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "signatures": {},
        "hashes": {},
        "type": "X",
        "content": {},
        "prev_events": [],
        "auth_events": [],
        "depth": 3,
        "unsigned": {"age_ts": 1000000},
    }
    signed = add_hashes_and_signatures(event, V10, "domain", KEY)
    assert signed["hashes"] == {"sha256": "5jM4wQpv6lnBo7CLIghJuHdW+s2CMBJPUOGOC89ncos"}
    assert signed["signatures"] == {
        "domain": {
            "ed25519:1": "KxwGjPSDEtvnFgU00fwFz+l6d2pJM6XBIaMEn81SXPTRl16AqLAYqfIReFGZlHi5K"
            "LjAWbOoMszkwsQma+lYAg"
        }
    }
    assert signed["unsigned"] == {"age_ts": 1000000}
    assert check_content_hash(signed)
    verify_event_signature(signed, V10, "domain", {"ed25519:1": KEY.verify_key})


def test_event_signing_redactable_vector() -> None:
    event: dict[str, Any] = {
        "content": {"body": "Here is the message content"},
        "event_id": "$0:domain",
        "origin": "domain",
        "origin_server_ts": 1000000,
        "type": "m.room.message",
        "room_id": "!r:domain",
        "sender": "@u:domain",
        "signatures": {},
        "unsigned": {"age_ts": 1000000},
    }
    signed = add_hashes_and_signatures(event, V10, "domain", KEY)
    assert signed["hashes"] == {"sha256": "onLKD1bGljeBWQhWZ1kaP9SorVmRQNdN5aM2JYU2n/g"}
    assert signed["signatures"]["domain"]["ed25519:1"] == (
        "Wm+VzmOUOz08Ds+0NTWb1d4CZrVsJSikkeRxh6aCcUwu6pNC78FunoD7KNWzqFn241eYHYMGCA5McEiVPdhzBA"
    )
    # The signature covers only the redacted form: changing the body keeps it valid
    # but breaks the content hash.
    changed = dict(signed, content={"body": "something else"})
    verify_event_signature(changed, V10, "domain", {"ed25519:1": KEY.verify_key})
    assert not check_content_hash(changed)
    assert content_hash_base64(signed) == signed["hashes"]["sha256"]


def test_signing_key_file_round_trip() -> None:
    text = "ed25519 a_AbCd YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1\n"
    (key,) = read_signing_keys(text)
    assert key.key_id == "ed25519:a_AbCd"
    assert key.seed == SEED
    # The appendix seed has non-zero trailing bits; we write canonical base64.
    assert write_signing_keys([key]) == f"ed25519 a_AbCd {encode_base64(SEED)}\n"
    assert read_signing_keys(write_signing_keys([key]))[0].seed == SEED
    fresh = generate_signing_key()
    assert fresh.version.startswith("a_") and len(fresh.version) == 6
    (again,) = read_signing_keys(write_signing_keys([fresh]))
    assert again.seed == fresh.seed and again.version == fresh.version


@pytest.mark.parametrize(
    "text",
    [
        "ed25519 a_x",
        "curve25519 a_x YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1",
        "ed25519 a_x Zm9v",
        "ed25519 bad:version YJDBA9Xnr2sVqXD9Vj7XVUnmFZcZrlw8Md7kMW+3XA1",
    ],
)
def test_bad_signing_key_files(text: str) -> None:
    with pytest.raises(EventFormatError):
        read_signing_keys(text)
