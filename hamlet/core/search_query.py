"""Full-text search: what is searchable in an event, and the user's query parsed.

A query is read the way web search boxes (and PostgreSQL's
`websearch_to_tsquery`, which Synapse uses) read it: words are ANDed,
`"several words"` is a phrase, `-word` excludes, and `or` between two
terms gives alternatives. Everything else is text: the parsed query holds
only runs of word characters, so no operator of either engine's own query
syntax (`NEAR(`, `*`, `^`, `:`, `&`, `!`, ...) ever reaches it. The
storage layer renders this structure for its engine with every term quoted
or bound as a parameter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hamlet.core.errors import CoreError

#: Search keys (Synapse's, the spec's) and the one event type each is read from.
KEY_TYPES: Mapping[str, str] = {
    "content.body": "m.room.message",
    "content.name": "m.room.name",
    "content.topic": "m.room.topic",
}

#: A longer search term is refused rather than parsed.
MAX_QUERY_CHARS = 1000
#: Words in one query, phrases and exclusions included.
MAX_QUERY_WORDS = 32

_WORD = re.compile(r"\w+")
_CHUNK = re.compile(r'"([^"]*)"?|(\S+)')


class SearchQueryError(CoreError):
    """The search term cannot be searched for (too long, too many words)."""


#: A term is one word, or several that must appear together (a phrase).
Term = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Clause:
    """Events with every `include` term and none of the `exclude` terms."""

    include: tuple[Term, ...]
    exclude: tuple[Term, ...] = ()


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """Events matching any one of the clauses."""

    clauses: tuple[Clause, ...]

    @property
    def words(self) -> list[str]:
        """The words searched for (not those excluded), in query order."""
        return [word for clause in self.clauses for term in clause.include for word in term]


def parse_search_query(text: str) -> SearchQuery:
    """Parse a user's search term; words are lower-cased.

    A query with nothing to look for (only punctuation, only exclusions)
    has no clauses and matches nothing.
    """
    if len(text) > MAX_QUERY_CHARS:
        raise SearchQueryError(f"search_term must be at most {MAX_QUERY_CHARS} characters")
    clauses: list[Clause] = []
    include: list[Term] = []
    exclude: list[Term] = []
    pending_or = False
    count = 0
    for match in _CHUNK.finditer(text):
        phrase, bare = match.group(1), match.group(2)
        negate = False
        if bare is not None:
            if bare.lower() == "or" and (include or exclude):
                pending_or = True
                continue
            if bare.startswith("-") and len(bare) > 1:
                negate, bare = True, bare[1:]
        words = tuple(w.lower() for w in _WORD.findall(phrase if phrase is not None else bare))
        if not words:
            continue
        count += len(words)
        if count > MAX_QUERY_WORDS:
            raise SearchQueryError(f"search_term must have at most {MAX_QUERY_WORDS} words")
        if pending_or and not negate:
            _close(clauses, include, exclude)
            include, exclude = [], []
        pending_or = False
        (exclude if negate else include).append(words)
    _close(clauses, include, exclude)
    return SearchQuery(tuple(clauses))


def _close(clauses: list[Clause], include: list[Term], exclude: list[Term]) -> None:
    if include:
        clauses.append(Clause(tuple(include), tuple(exclude)))


def searchable_text(event_type: str, content: Mapping[str, Any]) -> str | None:
    """The text an event is found by, or None when it has none.

    Messages by their body, room names by the name, topics by `topic` and
    the plain-text representations of `m.topic` (the spec's rich topics).
    """
    if event_type == "m.room.message":
        body = content.get("body")
        return body if isinstance(body, str) and body else None
    if event_type == "m.room.name":
        name = content.get("name")
        return name if isinstance(name, str) and name else None
    if event_type == "m.room.topic":
        parts: list[str] = []
        topic = content.get("topic")
        if isinstance(topic, str) and topic:
            parts.append(topic)
        rich = content.get("m.topic")
        if isinstance(rich, Mapping):
            reps = rich.get("m.text")
            if isinstance(reps, list):
                for rep in reps[:8]:
                    if not isinstance(rep, Mapping) or rep.get("mimetype", "text/plain") != (
                        "text/plain"
                    ):
                        continue
                    body = rep.get("body")
                    if isinstance(body, str) and body and body not in parts:
                        parts.append(body)
        return "\n".join(parts) or None
    return None
