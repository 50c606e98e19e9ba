"""The headers a media response carries, as Synapse sends them.

Content is served `inline` only for types a browser cannot turn into a
script (the spec's list, "Serving inline content"); everything else is an
`attachment`. The sandboxing Content-Security-Policy covers whatever slips
through. File names follow RFC 6266: a plain ASCII token as `filename=`,
anything else percent-encoded UTF-8 as `filename*=utf-8''...`.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

INLINE_CONTENT_TYPES: Final = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)

# Text types get a UTF-8 charset unless they name one (as Synapse does).
TEXT_CONTENT_TYPES: Final = frozenset(
    {
        "text/css",
        "text/csv",
        "text/html",
        "text/calendar",
        "text/plain",
        "text/javascript",
        "application/json",
        "application/ld+json",
        "application/rtf",
        "image/svg+xml",
        "text/xml",
    }
)

CONTENT_SECURITY_POLICY: Final = (
    "sandbox;"
    " default-src 'none';"
    " script-src 'none';"
    " plugin-types application/pdf;"
    " style-src 'unsafe-inline';"
    " media-src 'self';"
    " object-src 'self';"
)

# RFC 2616 token characters: visible ASCII minus separators.
_SEPARATORS: Final = frozenset('()<>@,;:\\"/[]?={} \t')
# RFC 5987 attr-char, left unescaped in `filename*`.
_ATTR_SAFE: Final = "!#$&+-.^_`|~"


def _is_token(name: str) -> bool:
    return bool(name) and all(33 <= ord(c) <= 126 and c not in _SEPARATORS for c in name)


def content_disposition(media_type: str, upload_name: str | None, *, inline: bool) -> str:
    disposition = "inline" if inline and media_type in INLINE_CONTENT_TYPES else "attachment"
    if upload_name:
        if _is_token(upload_name):
            return f"{disposition}; filename={upload_name}"
        return f"{disposition}; filename*=utf-8''{quote(upload_name, safe=_ATTR_SAFE)}"
    return disposition


def served_content_type(content_type: str) -> str:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in TEXT_CONTENT_TYPES and "charset" not in content_type.lower():
        return f"{media_type}; charset=UTF-8"
    return content_type


def media_headers(content_type: str, upload_name: str | None, *, thumbnail: bool) -> dict[str, str]:
    media_type = content_type.split(";", 1)[0].strip().lower()
    if thumbnail:
        disposition = content_disposition(
            media_type, upload_name or f"thumbnail.{media_type.rpartition('/')[2]}", inline=True
        )
    else:
        disposition = content_disposition(media_type, upload_name, inline=True)
    return {
        "Content-Type": served_content_type(content_type),
        "Content-Disposition": disposition,
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        # Older browsers read only the prefixed header; Synapse sends both.
        "X-Content-Security-Policy": "sandbox",
        # A browser must not guess a script out of, say, text/plain.
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Cache-Control": "public,max-age=86400,s-maxage=86400",
        "X-Robots-Tag": "noindex, nofollow, noarchive, noimageindex",
    }
