"""The bytes of local media on disk, laid out as Synapse lays them out.

Under `media_store_path`:

    local_content/ab/cd/efghijklmnopqrstuvwx            the upload of media ID abcdefgh...
    local_thumbnails/ab/cd/efghijklmnopqrstuvwx/
        96-96-image-png-crop                            its thumbnails, by size, type, method
    tmp/                                                files being written

Sharding by the first four characters keeps directories small. A file is
written under `tmp/`, flushed to disk, and only then renamed into place, so a
crash never leaves a half-written file where a reader could find it (at
worst an orphan in `tmp/`, which `clear_tmp()` removes at startup). Every
call blocks in the shared pool (`run_file_io`), never on the event loop.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterable
from pathlib import Path
from typing import BinaryIO, Final

from hamlet.runtime.blocking import run_file_io

# Media IDs we made are 24 letters; anything outside this set is no ID of
# ours and must never reach a path (the spec's rule against traversal).
MEDIA_ID_RE: Final = re.compile(r"^[A-Za-z0-9_-]{5,255}$")

WRITE_BATCH: Final = 1024 * 1024
READ_CHUNK: Final = 256 * 1024


class MediaFileReader:
    """An open media file, read in chunks off the event loop."""

    def __init__(self, f: BinaryIO, length: int) -> None:
        self._f = f
        self.length = length

    async def chunks(self) -> AsyncIterable[bytes]:
        while True:
            chunk = await run_file_io(self._f.read, READ_CHUNK)
            if not chunk:
                return
            yield chunk

    async def close(self) -> None:
        await run_file_io(self._f.close)


class MediaFiles:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"

    @staticmethod
    def _shard(media_id: str) -> tuple[str, str, str]:
        if not MEDIA_ID_RE.match(media_id):
            raise ValueError(f"not a media ID: {media_id!r}")
        return media_id[0:2], media_id[2:4], media_id[4:]

    def content_path(self, media_id: str) -> Path:
        a, b, rest = self._shard(media_id)
        return self.root / "local_content" / a / b / rest

    def thumbnails_dir(self, media_id: str) -> Path:
        a, b, rest = self._shard(media_id)
        return self.root / "local_thumbnails" / a / b / rest

    def thumbnail_path(
        self, media_id: str, width: int, height: int, content_type: str, method: str
    ) -> Path:
        top, _, sub = content_type.partition("/")
        return self.thumbnails_dir(media_id) / f"{width}-{height}-{top}-{sub}-{method}"

    # --- writing ---

    async def receive(self, chunks: AsyncIterable[bytes]) -> tuple[Path, int]:
        """Write a stream to a new file under tmp/; returns it and its size.

        On any error (too large, client gone) the partial file is removed.
        """
        f, path = await run_file_io(_open_temp, self.tmp_dir)
        try:
            size = 0
            batch: list[bytes] = []
            batched = 0
            async for chunk in chunks:
                size += len(chunk)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= WRITE_BATCH:
                    await run_file_io(f.write, b"".join(batch))
                    batch, batched = [], 0
            if batch:
                await run_file_io(f.write, b"".join(batch))
            await run_file_io(_sync_and_close, f)
        except BaseException:
            await run_file_io(_discard, f, path)
            raise
        return path, size

    async def install(self, tmp: Path, dest: Path) -> None:
        """Move a finished file from tmp/ into place (atomically)."""
        await run_file_io(_install, tmp, dest)

    async def write_atomic(self, dest: Path, data: bytes) -> None:
        await run_file_io(_write_atomic, self.tmp_dir, dest, data)

    async def discard(self, path: Path) -> None:
        await run_file_io(_unlink_quietly, path)

    async def delete_media(self, media_id: str) -> None:
        await run_file_io(_delete, self.content_path(media_id), self.thumbnails_dir(media_id))

    async def clear_tmp(self) -> None:
        """Remove files left in tmp/ by a process that died mid-upload."""
        await run_file_io(_clear_dir, self.tmp_dir)

    # --- reading ---

    async def open(self, path: Path) -> MediaFileReader | None:
        """The file opened for reading, or None if it is not there."""
        return await run_file_io(_open_for_read, path)


# The blocking halves, run on the pool.


def _open_temp(tmp_dir: Path) -> tuple[BinaryIO, Path]:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    return os.fdopen(fd, "wb"), Path(name)


def _sync_and_close(f: BinaryIO) -> None:
    try:
        f.flush()
        os.fsync(f.fileno())
    finally:
        f.close()


def _discard(f: BinaryIO, path: Path) -> None:
    f.close()
    _unlink_quietly(path)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _install(tmp: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def _write_atomic(tmp_dir: Path, dest: Path, data: bytes) -> None:
    f, tmp = _open_temp(tmp_dir)
    try:
        f.write(data)
        _sync_and_close(f)
    except BaseException:
        _discard(f, tmp)
        raise
    _install(tmp, dest)


def _delete(content: Path, thumbnails: Path) -> None:
    _unlink_quietly(content)
    shutil.rmtree(thumbnails, ignore_errors=True)


def _clear_dir(path: Path) -> None:
    try:
        entries = list(path.iterdir())
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_file():
            _unlink_quietly(entry)


def _open_for_read(path: Path) -> MediaFileReader | None:
    try:
        f = open(path, "rb")  # closed by MediaFileReader.close
    except FileNotFoundError:
        return None
    try:
        length = os.fstat(f.fileno()).st_size
    except BaseException:
        f.close()
        raise
    return MediaFileReader(f, length)
