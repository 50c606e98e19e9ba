"""The media repository: uploads, downloads and thumbnails of local media.

Metadata lives in the database (`MediaStore`), bytes on disk
(`MediaFiles`, under `media_store_path`). There is no federation, so media
of any other server is simply not found.

* **Uploads** are streamed to a file under `tmp/` and renamed into place
  only when complete; then the row is written. The per-tenant cap
  `limits.max_media_bytes` (the total size of uploaded originals;
  thumbnails are not counted) is checked under one lock with that rename
  and row, so two concurrent uploads cannot both squeeze past it. Going
  over it is `403 M_RESOURCE_LIMIT_EXCEEDED` (`limit_type:
  max_media_bytes`), the error Synapse uses for a server-side resource
  limit.
* **Asynchronous uploads** (`POST /create`, then `PUT /upload/...`): the
  ID is reserved for its creator for 24 hours; a user may hold 5 unused
  IDs at once (Synapse's `max_pending_media_uploads`). A download that
  finds the ID still empty waits (up to `timeout_ms`) and is woken the
  moment the upload lands.
* **Thumbnails** (see `thumbnailer.py`) are made on first request, one per
  configured size, with Pillow on the CPU pool (which takes tenants in
  turn), one at a time per homeserver (a decoded image is the big memory
  cost), and kept on disk with a row each.
* `rc_media_create` limits `create` and `upload` per user; admins are exempt.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any, Final

from hamlet.config import HomeServerConfig
from hamlet.handlers.common.errors import (
    ForbiddenError,
    LimitExceededError,
    MatrixError,
    NotFoundError,
    TooLargeError,
)
from hamlet.handlers.common.ratelimit import Ratelimiter
from hamlet.handlers.common.requester import Requester
from hamlet.handlers.common.service import ServiceBase
from hamlet.handlers.media import thumbnailer
from hamlet.runtime.blocking import run_cpu
from hamlet.runtime.clock import Clock
from hamlet.runtime.linearizer import Linearizer
from hamlet.runtime.timeout import with_timeout
from hamlet.storage.media_files import MEDIA_ID_RE, MediaFileReader, MediaFiles
from hamlet.storage.stores.media import LocalMedia, MediaStore, StoredThumbnail

logger = logging.getLogger(__name__)

MEDIA_ID_LENGTH: Final = 24
UNUSED_EXPIRATION_MS: Final = 24 * 60 * 60 * 1000
MAX_PENDING_UPLOADS: Final = 5
DEFAULT_TIMEOUT_MS: Final = 20_000
MAX_TIMEOUT_MS: Final = 60_000
DEFAULT_CONTENT_TYPE: Final = "application/octet-stream"


class NotYetUploadedError(MatrixError):
    def __init__(self) -> None:
        super().__init__(504, "M_NOT_YET_UPLOADED", "Media has not been uploaded yet")


@dataclass(slots=True)
class MediaFile:
    """Something to send back: an open file and what to say about it."""

    reader: MediaFileReader
    content_type: str
    upload_name: str | None
    is_thumbnail: bool = False

    @property
    def length(self) -> int:
        return self.reader.length


def media_type_of(content_type: str) -> str:
    """`image/png; charset=x` -> `image/png`."""
    return content_type.split(";", 1)[0].strip().lower()


class _UploadWaiter:
    __slots__ = ("event", "users")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.users = 0


class MediaRepository(ServiceBase):
    def __init__(
        self,
        *,
        server_name: str,
        clock: Clock,
        config: HomeServerConfig,
        store: MediaStore,
        files: MediaFiles,
    ) -> None:
        self.server_name = server_name
        self.clock = clock
        self.config = config
        self.store = store
        self.files = files
        rc = config.rc_media_create
        self.create_limiter = Ratelimiter(
            clock, name="rc_media_create", per_second=rc.per_second, burst_count=rc.burst_count
        )
        # Cap check + rename + row, as one step per homeserver.
        self._commit_lock = asyncio.Lock()
        self._thumbnail_queue = Linearizer()
        self._thumbnail_slot = asyncio.Semaphore(1)
        self._waiters: dict[str, _UploadWaiter] = {}
        self._closing = False

    async def load(self) -> None:
        await self.files.clear_tmp()

    def start(self) -> None:
        self.create_limiter.start()

    async def shutdown(self) -> None:
        self._closing = True
        self.create_limiter.stop()
        for waiter in self._waiters.values():
            waiter.event.set()

    # --- IDs ---

    def _local_media_id(self, server_name: str, media_id: str) -> str:
        """The media ID if it names local media that could exist; else 404."""
        if server_name != self.server_name or not MEDIA_ID_RE.match(media_id):
            raise NotFoundError()
        return media_id

    def mxc(self, media_id: str) -> str:
        return f"mxc://{self.server_name}/{media_id}"

    @staticmethod
    def _new_media_id() -> str:
        return "".join(secrets.choice(string.ascii_letters) for _ in range(MEDIA_ID_LENGTH))

    def _expired(self, media: LocalMedia) -> bool:
        return (
            not media.uploaded and media.created_ts < self.clock.time_msec() - UNUSED_EXPIRATION_MS
        )

    # --- uploads ---

    async def _ratelimit(self, requester: Requester) -> None:
        if not requester.is_admin:
            await self.create_limiter.ratelimit(requester.user_id)

    async def _check_cap(self, extra: int) -> None:
        cap = self.config.limits.max_media_bytes
        if cap is None:
            return
        if await self.store.total_media_bytes() + extra > cap:
            extra_fields: dict[str, Any] = {"limit_type": "max_media_bytes"}
            if self.config.admin_contact:
                extra_fields["admin_contact"] = self.config.admin_contact
            raise MatrixError(
                403,
                "M_RESOURCE_LIMIT_EXCEEDED",
                "This homeserver has no room for more media",
                **extra_fields,
            )

    async def check_upload_allowed(self, requester: Requester, content_length: int | None) -> None:
        """Everything that can refuse an upload before its body is read."""
        if content_length is not None:
            if content_length > self.config.max_upload_size:
                raise TooLargeError("Upload request body is too large")
            await self._check_cap(content_length)

    async def create(self, requester: Requester) -> dict[str, Any]:
        await self._ratelimit(requester)
        now = self.clock.time_msec()
        pending = await self.store.count_pending_uploads(
            requester.user_id, now - UNUSED_EXPIRATION_MS
        )
        if pending >= MAX_PENDING_UPLOADS:
            raise LimitExceededError(
                60_000,
                "You have too many uploads pending. Please finish uploading your existing files.",
            )
        media_id = self._new_media_id()
        await self.store.store_local_media(
            media_id=media_id,
            media_type=None,
            media_length=None,
            upload_name=None,
            user_id=requester.user_id,
            created_ts=now,
        )
        return {
            "content_uri": self.mxc(media_id),
            "unused_expires_at": now + UNUSED_EXPIRATION_MS,
        }

    async def upload(
        self,
        requester: Requester,
        body: AsyncIterable[bytes],
        *,
        content_type: str | None,
        upload_name: str | None,
    ) -> str:
        """Store a new upload; returns its `mxc://` URI."""
        await self._ratelimit(requester)
        tmp, size = await self.files.receive(body)
        media_id = self._new_media_id()
        dest = self.files.content_path(media_id)
        try:
            async with self._commit_lock:
                await self._check_cap(size)
                await self.files.install(tmp, dest)
                await self.store.store_local_media(
                    media_id=media_id,
                    media_type=content_type or DEFAULT_CONTENT_TYPE,
                    media_length=size,
                    upload_name=upload_name,
                    user_id=requester.user_id,
                    created_ts=self.clock.time_msec(),
                )
        except BaseException:
            await self.files.discard(tmp)
            await self.files.discard(dest)
            raise
        logger.info("Stored upload %s (%d bytes) for %s", media_id, size, requester.user_id)
        return self.mxc(media_id)

    async def check_may_upload_to(
        self, requester: Requester, server_name: str, media_id: str
    ) -> None:
        """The checks of `PUT /upload/{serverName}/{mediaId}` made before the body is read."""
        if server_name != self.server_name:
            raise NotFoundError("Non-local server name specified")
        media = await self.store.get_local_media(self._local_media_id(server_name, media_id))
        if media is None or self._expired(media):
            raise NotFoundError("Unknown media ID")
        if media.user_id != requester.user_id:
            raise ForbiddenError("You may not upload to this media ID")
        if media.uploaded:
            raise MatrixError(409, "M_CANNOT_OVERWRITE_MEDIA", "Media ID cannot be overwritten")

    async def upload_to(
        self,
        requester: Requester,
        server_name: str,
        media_id: str,
        body: AsyncIterable[bytes],
        *,
        content_type: str | None,
        upload_name: str | None,
    ) -> None:
        await self.check_may_upload_to(requester, server_name, media_id)
        tmp, size = await self.files.receive(body)
        dest = self.files.content_path(media_id)
        try:
            async with self._commit_lock:
                # Checked again: another upload to this ID may have landed meanwhile.
                await self.check_may_upload_to(requester, server_name, media_id)
                await self._check_cap(size)
                await self.files.install(tmp, dest)
                done = await self.store.mark_uploaded(
                    media_id, content_type or DEFAULT_CONTENT_TYPE, size, upload_name
                )
                if not done:
                    raise MatrixError(
                        409, "M_CANNOT_OVERWRITE_MEDIA", "Media ID cannot be overwritten"
                    )
        except BaseException:
            await self.files.discard(tmp)
            raise
        logger.info("Stored upload %s (%d bytes) for %s", media_id, size, requester.user_id)
        waiter = self._waiters.get(media_id)
        if waiter is not None:
            waiter.event.set()

    # --- downloads ---

    async def _get_uploaded(self, server_name: str, media_id: str, timeout_ms: int) -> LocalMedia:
        """The media's row once it is uploaded, waiting up to `timeout_ms` for that."""
        media_id = self._local_media_id(server_name, media_id)
        # Registered before looking, so an upload landing in between still wakes us.
        waiter = self._waiters.get(media_id)
        if waiter is None:
            waiter = self._waiters[media_id] = _UploadWaiter()
        waiter.users += 1
        try:
            media = await self.store.get_local_media(media_id)
            if media is not None and not media.uploaded and not self._expired(media):
                timeout_ms = max(0, min(timeout_ms, MAX_TIMEOUT_MS))
                if timeout_ms > 0 and not self._closing:
                    try:
                        await with_timeout(waiter.event.wait(), timeout_ms / 1000, self.clock)
                    except TimeoutError:
                        pass
                if self._closing:
                    raise NotYetUploadedError()
                media = await self.store.get_local_media(media_id)
                if media is not None and not media.uploaded:
                    if self._expired(media):
                        raise NotFoundError()
                    raise NotYetUploadedError()
        finally:
            waiter.users -= 1
            if waiter.users == 0 and self._waiters.get(media_id) is waiter:
                del self._waiters[media_id]
        if media is None or not media.uploaded or media.quarantined_by is not None:
            raise NotFoundError()
        return media

    async def download(self, server_name: str, media_id: str, timeout_ms: int) -> MediaFile:
        media = await self._get_uploaded(server_name, media_id, timeout_ms)
        reader = await self.files.open(self.files.content_path(media.media_id))
        if reader is None:
            logger.warning("Media %s has a row but no file", media.media_id)
            raise NotFoundError()
        return MediaFile(reader, media.media_type or DEFAULT_CONTENT_TYPE, media.upload_name, False)

    # --- thumbnails ---

    async def thumbnail(
        self,
        server_name: str,
        media_id: str,
        *,
        width: int,
        height: int,
        method: thumbnailer.Method,
        timeout_ms: int,
    ) -> MediaFile:
        media = await self._get_uploaded(server_name, media_id, timeout_ms)
        source_type = media_type_of(media.media_type or DEFAULT_CONTENT_TYPE)
        out_type = thumbnailer.THUMBNAIL_TYPES.get(source_type)
        if out_type is None:
            raise MatrixError(
                400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content"
            )
        t_w, t_h, t_method = thumbnailer.select_size(width, height, method)
        found = await self._open_thumbnail(media.media_id, t_w, t_h, t_method)
        if found is not None:
            return found
        async with self._thumbnail_queue.queue((media.media_id, t_w, t_h, t_method)):
            # Whoever held the queue before us may have made it.
            found = await self._open_thumbnail(media.media_id, t_w, t_h, t_method)
            if found is not None:
                return found
            source = self.files.content_path(media.media_id)
            async with self._thumbnail_slot:
                try:
                    data = await run_cpu(
                        self.server_name, thumbnailer.render, source, t_w, t_h, t_method, out_type
                    )
                except thumbnailer.ImageTooLargeError:
                    raise MatrixError(
                        413, "M_TOO_LARGE", "Content is too large to thumbnail"
                    ) from None
                except thumbnailer.ThumbnailError as e:
                    logger.info("Cannot thumbnail %s: %s", media.media_id, e)
                    raise MatrixError(
                        400, "M_UNKNOWN", "Cannot generate thumbnails for the requested content"
                    ) from None
                except FileNotFoundError:
                    raise NotFoundError() from None
            if data is None:
                # Already no bigger than asked: the original is the thumbnail.
                reader = await self.files.open(source)
                if reader is None:
                    raise NotFoundError()
                return MediaFile(reader, source_type, None, True)
            path = self.files.thumbnail_path(media.media_id, t_w, t_h, out_type, t_method)
            await self.files.write_atomic(path, data)
            await self.store.store_thumbnail(
                media.media_id, StoredThumbnail(t_w, t_h, t_method, out_type, len(data))
            )
            logger.debug("Made thumbnail %s %dx%d %s", media.media_id, t_w, t_h, t_method)
        reader = await self.files.open(path)
        if reader is None:
            raise NotFoundError()
        return MediaFile(reader, out_type, None, True)

    async def _open_thumbnail(
        self, media_id: str, width: int, height: int, method: str
    ) -> MediaFile | None:
        thumb = await self.store.get_thumbnail(media_id, width, height, method)
        if thumb is None:
            return None
        path = self.files.thumbnail_path(media_id, width, height, thumb.content_type, method)
        reader = await self.files.open(path)
        if reader is None:
            return None  # the row outlived its file: make it again
        return MediaFile(reader, thumb.content_type, None, True)

    # --- admin ---

    async def set_quarantined(self, server_name: str, media_id: str, by: str | None) -> None:
        """Quarantine (or release) local media; unknown or remote media: no-op, as Synapse."""
        if server_name == self.server_name and MEDIA_ID_RE.match(media_id):
            await self.store.set_quarantined(media_id, by)

    async def delete(self, server_name: str, media_id: str) -> dict[str, Any]:
        if server_name != self.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Can only delete local media")
        if not MEDIA_ID_RE.match(media_id):
            raise NotFoundError("Unknown media")
        async with self._commit_lock:
            if await self.store.get_local_media(media_id) is None:
                raise NotFoundError("Unknown media")
            await self.store.delete_local_media(media_id)
            await self.files.delete_media(media_id)
        logger.info("Deleted media %s", media_id)
        return {"deleted_media": [media_id], "total": 1}
