"""Metadata of local media and their thumbnails (the bytes live on disk)."""

from __future__ import annotations

from dataclasses import dataclass

from hamlet.storage.database import Database, Row, Transaction

_MEDIA_COLUMNS = (
    "media_id, media_type, media_length, upload_name, user_id, created_ts, quarantined_by"
)


@dataclass(frozen=True, slots=True)
class LocalMedia:
    media_id: str
    media_type: str | None
    media_length: int | None  # None: created, not uploaded yet
    upload_name: str | None
    user_id: str
    created_ts: int
    quarantined_by: str | None

    @property
    def uploaded(self) -> bool:
        return self.media_length is not None


@dataclass(frozen=True, slots=True)
class StoredThumbnail:
    width: int
    height: int
    method: str
    content_type: str
    length: int


def _media(row: Row) -> LocalMedia:
    return LocalMedia(
        media_id=row[0],
        media_type=row[1],
        media_length=None if row[2] is None else int(row[2]),
        upload_name=row[3],
        user_id=row[4],
        created_ts=int(row[5]),
        quarantined_by=row[6],
    )


class MediaStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_local_media(self, media_id: str) -> LocalMedia | None:
        row = await self.db.fetchone(
            "get_local_media",
            f"SELECT {_MEDIA_COLUMNS} FROM local_media_repository WHERE media_id = ?",
            media_id,
        )
        return None if row is None else _media(row)

    async def store_local_media(
        self,
        *,
        media_id: str,
        media_type: str | None,
        media_length: int | None,
        upload_name: str | None,
        user_id: str,
        created_ts: int,
    ) -> None:
        await self.db.execute(
            "store_local_media",
            "INSERT INTO local_media_repository"
            " (media_id, media_type, media_length, upload_name, user_id, created_ts)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            media_id,
            media_type,
            media_length,
            upload_name,
            user_id,
            created_ts,
        )

    async def mark_uploaded(
        self, media_id: str, media_type: str, media_length: int, upload_name: str | None
    ) -> bool:
        """Fill in a created media ID; False if it was already uploaded (or is gone)."""
        changed = await self.db.execute(
            "mark_local_media_uploaded",
            "UPDATE local_media_repository"
            " SET media_type = ?, media_length = ?, upload_name = ?"
            " WHERE media_id = ? AND media_length IS NULL",
            media_type,
            media_length,
            upload_name,
            media_id,
        )
        return changed > 0

    async def count_pending_uploads(self, user_id: str, created_after_ts: int) -> int:
        count = await self.db.fetchval(
            "count_pending_media",
            "SELECT COUNT(*) FROM local_media_repository"
            " WHERE user_id = ? AND created_ts > ? AND media_length IS NULL",
            user_id,
            created_after_ts,
        )
        return int(count or 0)

    async def total_media_bytes(self) -> int:
        """Bytes of every uploaded local media (thumbnails not counted)."""
        total = await self.db.fetchval(
            "total_local_media_bytes",
            "SELECT COALESCE(SUM(media_length), 0) FROM local_media_repository",
        )
        return int(total or 0)

    async def set_quarantined(self, media_id: str, quarantined_by: str | None) -> bool:
        changed = await self.db.execute(
            "set_local_media_quarantined",
            "UPDATE local_media_repository SET quarantined_by = ? WHERE media_id = ?",
            quarantined_by,
            media_id,
        )
        return changed > 0

    async def delete_local_media(self, media_id: str) -> None:
        async def run(txn: Transaction) -> None:
            await txn.execute(
                "DELETE FROM local_media_repository_thumbnails WHERE media_id = ?", (media_id,)
            )
            await txn.execute("DELETE FROM local_media_repository WHERE media_id = ?", (media_id,))

        await self.db.run_interaction("delete_local_media", run)

    async def get_thumbnail(
        self, media_id: str, width: int, height: int, method: str
    ) -> StoredThumbnail | None:
        row = await self.db.fetchone(
            "get_local_media_thumbnail",
            "SELECT thumbnail_width, thumbnail_height, thumbnail_method, thumbnail_type,"
            " thumbnail_length FROM local_media_repository_thumbnails"
            " WHERE media_id = ? AND thumbnail_width = ? AND thumbnail_height = ?"
            " AND thumbnail_method = ?",
            media_id,
            width,
            height,
            method,
        )
        if row is None:
            return None
        return StoredThumbnail(int(row[0]), int(row[1]), row[2], row[3], int(row[4]))

    async def store_thumbnail(self, media_id: str, thumb: StoredThumbnail) -> None:
        await self.db.execute(
            "store_local_media_thumbnail",
            "INSERT INTO local_media_repository_thumbnails"
            " (media_id, thumbnail_width, thumbnail_height, thumbnail_method, thumbnail_type,"
            " thumbnail_length) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (media_id, thumbnail_width, thumbnail_height, thumbnail_method)"
            " DO UPDATE SET thumbnail_type = excluded.thumbnail_type,"
            " thumbnail_length = excluded.thumbnail_length",
            media_id,
            thumb.width,
            thumb.height,
            thumb.method,
            thumb.content_type,
            thumb.length,
        )
