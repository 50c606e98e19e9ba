"""Dotted property paths into event JSON, as filters and push rules write them."""

from __future__ import annotations


def split_path(path: str) -> list[str]:
    """`content.m\\.relates_to` -> ["content", "m.relates_to"]; `\\\\` is a backslash."""
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(path):
        char = path[i]
        if char == "\\" and i + 1 < len(path) and path[i + 1] in ".\\":
            current.append(path[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts
