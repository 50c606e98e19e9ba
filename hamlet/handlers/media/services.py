"""Builds the media repository (uploads, downloads, thumbnails)."""

from __future__ import annotations

from hamlet.handlers.common.service import BuildContext
from hamlet.handlers.container import Services
from hamlet.handlers.media.repository import MediaRepository
from hamlet.storage.media_files import MediaFiles
from hamlet.storage.stores.media import MediaStore


def build(ctx: BuildContext, s: Services) -> None:
    s.media = ctx.own(
        MediaRepository(
            server_name=ctx.server_name,
            clock=ctx.clock,
            config=ctx.config,
            store=MediaStore(ctx.db),
            files=MediaFiles(ctx.config.media_store_path),
        )
    )
