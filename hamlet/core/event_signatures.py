"""Which servers must have signed an event received over federation.

The spec ("Validating hashes and signatures on received events") and
Synapse agree: the sender's server, except for an invite made from a
third-party invite (its sender matches the original invite, but any
server may send it); in room versions 1 and 2 also the server in the
event ID; and from the `restricted` join rule on, the server of the user
that authorised a join (`join_authorised_via_users_server`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hamlet.core.errors import InvalidIdError, SignatureError
from hamlet.core.ids import get_domain_from_id
from hamlet.core.room_versions import RoomVersion

AUTHORISING_USER = "join_authorised_via_users_server"


def _domain(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise SignatureError(f"event has no {what}")
    try:
        return get_domain_from_id(value)
    except InvalidIdError as exc:
        raise SignatureError(f"event {what} {value!r} has no server name") from exc


def _is_member(pdu: Mapping[str, Any], membership: str) -> tuple[bool, Mapping[str, Any]]:
    content = pdu.get("content")
    if pdu.get("type") != "m.room.member" or not isinstance(content, Mapping):
        return False, {}
    return content.get("membership") == membership, content


def required_signers(pdu: Mapping[str, Any], room_version: RoomVersion) -> set[str]:
    """The servers whose signatures `pdu` must carry; SignatureError if it
    names them so badly that none can be worked out."""
    signers: set[str] = set()
    sender_domain = _domain(pdu.get("sender"), "sender")
    is_invite, content = _is_member(pdu, "invite")
    if not (is_invite and "third_party_invite" in content):
        signers.add(sender_domain)
    if room_version.event_id_format == "opaque":
        signers.add(_domain(pdu.get("event_id"), "event_id"))
    is_join, content = _is_member(pdu, "join")
    if room_version.restricted_join_rule and is_join and AUTHORISING_USER in content:
        signers.add(_domain(content[AUTHORISING_USER], AUTHORISING_USER))
    return signers


def key_validity_needed(pdu: Mapping[str, Any], room_version: RoomVersion) -> int:
    """The time the signing keys must be valid at: the event's
    `origin_server_ts` from room version 5 on, any time (0) before."""
    ts = pdu.get("origin_server_ts")
    if not room_version.enforce_key_validity:
        return 0
    if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
        raise SignatureError("event has no valid origin_server_ts")
    return ts
