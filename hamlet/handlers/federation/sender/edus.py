"""The EDUs the sender makes from local typing, receipts and presence.

Each comes with a coalescing key: a newer EDU with the same type and key
replaces a queued one, so what a destination that is down accumulates is
bounded by users and rooms, not by time.
"""

from __future__ import annotations

from dataclasses import dataclass

from hamlet.core.canonical_json import JsonDict
from hamlet.handlers.user_streams.presence import UserPresence
from hamlet.storage.stores.receipts import Receipt

TYPING = "m.typing"
RECEIPT = "m.receipt"
PRESENCE = "m.presence"


@dataclass(frozen=True, slots=True)
class Edu:
    edu_type: str
    key: str
    content: JsonDict


def typing_edu(room_id: str, user_id: str, typing: bool) -> Edu:
    return Edu(
        TYPING, f"{room_id}|{user_id}", {"room_id": room_id, "user_id": user_id, "typing": typing}
    )


def receipt_edu(receipt: Receipt) -> Edu:
    data: JsonDict = {"ts": receipt.ts}
    if receipt.thread_id is not None:
        data["thread_id"] = receipt.thread_id
    content = {
        receipt.room_id: {
            receipt.receipt_type: {
                receipt.user_id: {"event_ids": [receipt.event_id], "data": data},
            }
        }
    }
    key = f"{receipt.room_id}|{receipt.receipt_type}|{receipt.user_id}|{receipt.thread_id or ''}"
    return Edu(RECEIPT, key, content)


def presence_edu(state: UserPresence, now_ms: int) -> Edu:
    push: JsonDict = {"user_id": state.user_id, **state.content(now_ms)}
    push.setdefault("currently_active", False)
    return Edu(PRESENCE, state.user_id, {"push": [push]})
