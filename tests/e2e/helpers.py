"""Clients' side of end-to-end encryption for tests: ed25519 keys and signed JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nacl.signing

from hamlet.core.canonical_json import encode_canonical_json
from hamlet.core.unpadded_base64 import encode_base64
from tests.support.harness import Harness, Response
from tests.support.users import TestUser

V3 = "/_matrix/client/v3"


async def call(
    harness: Harness, method: str, path: str, user: TestUser | None, json: Any = None
) -> Response:
    return await harness.request(method, V3 + path, json=json, token=user.token if user else None)


@dataclass
class Ed25519:
    key: nacl.signing.SigningKey = field(default_factory=nacl.signing.SigningKey.generate)

    @property
    def public(self) -> str:
        return encode_base64(bytes(self.key.verify_key))

    def sign(self, obj: dict[str, Any], user_id: str, key_id: str | None = None) -> dict[str, Any]:
        """A copy of `obj` with this key's signature added (as a client would)."""
        stripped = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
        signature = encode_base64(self.key.sign(encode_canonical_json(stripped)).signature)
        out = dict(obj)
        sigs = {u: dict(s) for u, s in obj.get("signatures", {}).items()}
        sigs.setdefault(user_id, {})[key_id or f"ed25519:{self.public}"] = signature
        out["signatures"] = sigs
        return out


def device_keys(user: TestUser, signer: Ed25519, device_id: str | None = None) -> dict[str, Any]:
    return sign_device_keys(user.user_id, device_id or user.device_id, signer)


def sign_device_keys(user_id: str, device_id: str, signer: Ed25519) -> dict[str, Any]:
    """A device's identity keys, signed by its ed25519 key."""
    keys = {
        "user_id": user_id,
        "device_id": device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {
            f"curve25519:{device_id}": "curve" + signer.public[:20],
            f"ed25519:{device_id}": signer.public,
        },
    }
    return signer.sign(keys, user_id, f"ed25519:{device_id}")


def one_time_keys(signer: Ed25519, user: TestUser, ids: range, prefix: str = "k") -> dict[str, Any]:
    return {
        f"signed_curve25519:{prefix}{i}": signer.sign(
            {"key": f"otk-{prefix}{i}"}, user.user_id, f"ed25519:{user.device_id}"
        )
        for i in ids
    }


def cross_signing_key(user: TestUser, key: Ed25519, usage: str) -> dict[str, Any]:
    return {
        "user_id": user.user_id,
        "usage": [usage],
        "keys": {f"ed25519:{key.public}": key.public},
    }


@dataclass
class CrossSigning:
    master: Ed25519 = field(default_factory=Ed25519)
    self_signing: Ed25519 = field(default_factory=Ed25519)
    user_signing: Ed25519 = field(default_factory=Ed25519)

    def body(self, user: TestUser) -> dict[str, Any]:
        master = cross_signing_key(user, self.master, "master")
        ssk = self.master.sign(
            cross_signing_key(user, self.self_signing, "self_signing"), user.user_id
        )
        usk = self.master.sign(
            cross_signing_key(user, self.user_signing, "user_signing"), user.user_id
        )
        return {"master_key": master, "self_signing_key": ssk, "user_signing_key": usk}


async def sync(harness: Harness, user: TestUser, query: str = "") -> dict[str, Any]:
    resp = await call(harness, "GET", "/sync" + query, user)
    assert resp.status == 200, resp.json
    body: dict[str, Any] = resp.json
    return body


async def shared_room(harness: Harness, owner: TestUser, *joiners: TestUser) -> str:
    resp = await call(harness, "POST", "/createRoom", owner, {"preset": "public_chat"})
    assert resp.status == 200, resp.json
    room_id: str = resp.json["room_id"]
    for user in joiners:
        resp = await call(harness, "POST", f"/rooms/{room_id}/join", user, {})
        assert resp.status == 200, resp.json
    return room_id
