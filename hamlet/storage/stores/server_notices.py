"""Which room each user receives server notices in."""

from __future__ import annotations

from hamlet.storage.database import Database, Transaction


class ServerNoticeStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_room(self, user_id: str) -> str | None:
        value = await self.db.fetchval(
            "get_server_notice_room",
            "SELECT room_id FROM server_notice_rooms WHERE user_id = ?",
            user_id,
        )
        return None if value is None else str(value)

    async def set_room(self, user_id: str, room_id: str) -> None:
        async def txn_fn(txn: Transaction) -> None:
            changed = await txn.execute(
                "UPDATE server_notice_rooms SET room_id = ? WHERE user_id = ?", (room_id, user_id)
            )
            if changed == 0:
                await txn.execute(
                    "INSERT INTO server_notice_rooms (user_id, room_id) VALUES (?, ?)",
                    (user_id, room_id),
                )

        await self.db.run_interaction("set_server_notice_room", txn_fn)
