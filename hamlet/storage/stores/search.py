"""Full-text search over room events: queries on the index `search_index` keeps.

SQLite keeps an FTS5 table (rowid = stream_ordering), PostgreSQL an english
tsvector per event behind a GIN index (migration 0014). Both rank by a
function of the event alone, so a rank never changes while results are
paged through: PostgreSQL's `ts_rank_cd` (cover density, as Synapse), and on
SQLite a saturating count of the matched words over the text's length
(FTS5's bm25 would move with every new message, its statistics being the
whole table's). The work of one query is bounded whatever the term: rank
order ranks the newest `RANK_WINDOW` matches, `count` stops at `COUNT_CAP`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hamlet.core.filters import RoomEventFilter
from hamlet.core.search_query import Clause, SearchQuery, Term
from hamlet.storage.database import Database, Transaction
from hamlet.storage.stores.room_history import _filter_clauses
from hamlet.storage.stores.search_index import index_text

# Filter lists longer than this are applied after the query rather than in
# it, so no request can pass the engines' bound on parameters.
_MAX_SQL_LIST = 200
# Matched words are marked with this in SQLite's highlight() and PostgreSQL's
# ts_headline(); text cannot carry it in a way that matters (it only adds a
# highlight).
_MARK = "\x01"
_HEADLINE_OPTIONS = f"StartSel={_MARK}, StopSel={_MARK}, HighlightAll=TRUE"
#: Rank order ranks the newest this many matches of the search's snapshot.
RANK_WINDOW = 2000
#: `count` counts no further.
COUNT_CAP = 5000


@dataclass(frozen=True, slots=True)
class SearchScope:
    """Which events one user's search looks at."""

    user_id: str
    #: Event types searched (from the requested keys).
    types: Sequence[str]
    #: Only events at or before this stream position (the search's snapshot).
    upto: int
    event_filter: RoomEventFilter | None = None
    room_id: str | None = None
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    stream_ordering: int
    rank: float


def _fts5_term(term: Term) -> str:
    # Words hold only word characters; quoting makes each a literal phrase
    # for FTS5, never an operator.
    return '"' + " ".join(term).replace('"', '""') + '"'


def _fts5_clause(clause: Clause) -> str:
    text = "(" + " AND ".join(_fts5_term(t) for t in clause.include) + ")"
    for term in clause.exclude:
        text += " NOT " + _fts5_term(term)
    return text


def fts5_match(query: SearchQuery) -> str:
    return " OR ".join(_fts5_clause(c) for c in query.clauses)


def _pg_tsquery(query: SearchQuery) -> tuple[str, list[Any]]:
    """A tsquery expression with every word a bound parameter."""
    args: list[Any] = []

    def term(t: Term) -> str:
        args.append(index_text(" ".join(t)))
        return "phraseto_tsquery('english', ?)"

    clauses = []
    for clause in query.clauses:
        parts = [term(t) for t in clause.include]
        parts.extend("!!" + term(t) for t in clause.exclude)
        clauses.append("(" + " && ".join(parts) + ")")
    return " || ".join(clauses), args


def _scope_clauses(scope: SearchScope) -> tuple[list[str], list[Any]]:
    clauses = [
        "m.user_id = ?",
        "m.forgotten = ?",
        "m.membership IN ('join', 'leave', 'ban')",
        # Nothing after a user left (or was banned) is theirs to find.
        "(m.membership = 'join' OR e.stream_ordering <= m.stream_ordering)",
        "e.redacted_by IS NULL",
        "e.stream_ordering <= ?",
        f"e.type IN ({','.join('?' * len(scope.types))})",
    ]
    args: list[Any] = [scope.user_id, False, scope.upto, *scope.types]
    f = scope.event_filter
    if f is not None:
        if f.rooms is not None and len(f.rooms) <= _MAX_SQL_LIST:
            clauses.append(f"e.room_id IN ({','.join('?' * len(f.rooms))})" if f.rooms else "1 = 0")
            args.extend(f.rooms)
        if f.not_rooms and len(f.not_rooms) <= _MAX_SQL_LIST:
            clauses.append(f"e.room_id NOT IN ({','.join('?' * len(f.not_rooms))})")
            args.extend(f.not_rooms)
        sizes = (len(f.types or ()), len(f.not_types), len(f.senders or ()), len(f.not_senders))
        if max(sizes) <= _MAX_SQL_LIST:
            more, more_args = _filter_clauses(f)
            clauses.extend(more)
            args.extend(more_args)
    if scope.room_id is not None:
        clauses.append("e.room_id = ?")
        args.append(scope.room_id)
    if scope.sender is not None:
        clauses.append("e.sender = ?")
        args.append(scope.sender)
    return clauses, args


class SearchStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def _matching(self, query: SearchQuery, scope: SearchScope) -> tuple[str, str, list[Any]]:
        """(FROM ... WHERE over the matches in scope, the stream column, args)."""
        clauses, args = _scope_clauses(scope)
        if self.db.engine == "postgres":
            tsquery, q_args = _pg_tsquery(query)
            key = "s.stream_ordering"
            sql = (
                f" FROM (SELECT {tsquery} AS query) q, event_search s"
                f" JOIN events e ON e.stream_ordering = {key}"
                " JOIN room_memberships m ON m.room_id = e.room_id"
                f" WHERE s.vector @@ q.query AND {' AND '.join(clauses)}"
            )
            return sql, key, [*q_args, *args]
        key = "event_search.rowid"
        sql = (
            f" FROM event_search JOIN events e ON e.stream_ordering = {key}"
            " JOIN room_memberships m ON m.room_id = e.room_id"
            f" WHERE event_search MATCH ? AND {' AND '.join(clauses)}"
        )
        return sql, key, [fts5_match(query), *args]

    def _ranked(
        self, query: SearchQuery, scope: SearchScope, window: int | None
    ) -> tuple[str, list[Any]]:
        """SELECT of (stream, rank) over the matches in scope, or over the
        newest `window` of them."""
        matching, key, args = self._matching(query, scope)
        newest = f" ORDER BY {key} DESC LIMIT {int(window)}" if window is not None else ""
        if self.db.engine == "postgres":
            return (
                "SELECT w.stream, ts_rank_cd(w.vector, w.query) AS rank FROM"
                f" (SELECT {key} AS stream, s.vector, q.query{matching}{newest}) w"
            ), args
        # hits: each matched word gains one mark in highlight(), which must
        # run in the query that matches.
        return (
            "SELECT stream, hits * 1.0 / (hits + 1.0 + size / 100.0) AS rank FROM"
            f" (SELECT {key} AS stream,"
            " length(highlight(event_search, 0, ?, '')) - length(event_search.value) AS hits,"
            f" length(event_search.value) AS size{matching}{newest})"
        ), [_MARK, *args]

    async def search(
        self,
        query: SearchQuery,
        scope: SearchScope,
        *,
        by_rank: bool,
        after: tuple[float, int] | None,
        limit: int,
    ) -> list[SearchHit]:
        """The next `limit` matches after `after` (rank, stream_ordering).

        By rank: best first, ties newest first, among the newest
        `RANK_WINDOW` matches (ranking every match of a word in half the
        messages would cost a full pass over them per page); else newest
        first (`after`'s rank is then ignored).
        """
        if not query.clauses:
            return []
        inner, args = self._ranked(query, scope, RANK_WINDOW if by_rank else None)
        where = ""
        if after is not None:
            if by_rank:
                where = " WHERE (r.rank < ? OR (r.rank = ? AND r.stream < ?))"
                args.extend([after[0], after[0], after[1]])
            else:
                where = " WHERE r.stream < ?"
                args.append(after[1])
        order = "r.rank DESC, r.stream DESC" if by_rank else "r.stream DESC"
        rows = await self.db.fetchall(
            "search_events",
            f"SELECT r.stream, r.rank FROM ({inner}) r{where} ORDER BY {order} LIMIT ?",
            *args,
            limit,
        )
        return [SearchHit(int(r[0]), float(r[1])) for r in rows]

    async def count(self, query: SearchQuery, scope: SearchScope) -> int:
        """How many events match, up to `COUNT_CAP` (before history visibility:
        an estimate, as the spec allows)."""
        if not query.clauses:
            return 0
        matching, key, args = self._matching(query, scope)
        value = await self.db.fetchval(
            "search_count",
            f"SELECT COUNT(*) FROM (SELECT {key}{matching} LIMIT {COUNT_CAP}) c",
            *args,
        )
        return int(value or 0)

    async def matched_words(self, query: SearchQuery, texts: dict[int, str]) -> set[str]:
        """The words of these events' texts (by stream_ordering) that the query matched."""
        if not texts or not query.clauses:
            return set()
        if self.db.engine == "postgres":
            tsquery, q_args = _pg_tsquery(query)

            async def run(txn: Transaction) -> list[str]:
                out = []
                for text in texts.values():
                    value = await txn.fetchval(
                        f"SELECT ts_headline('english', ?, {tsquery}, ?)",
                        (index_text(text), *q_args, _HEADLINE_OPTIONS),
                    )
                    out.append(str(value or ""))
                return out

            marked = await self.db.run_interaction("search_highlights", run)
        else:
            positions = list(texts)
            rows = await self.db.fetchall(
                "search_highlights",
                "SELECT highlight(event_search, 0, ?, ?) FROM event_search"
                f" WHERE event_search MATCH ? AND rowid IN ({','.join('?' * len(positions))})",
                _MARK,
                _MARK,
                fts5_match(query),
                *positions,
            )
            marked = [str(r[0]) for r in rows]
        words: set[str] = set()
        for text in marked:
            # Marks pair up around each match: odd pieces are the matches.
            for piece in text.split(_MARK)[1::2]:
                if piece.strip():
                    words.add(piece.strip().lower())
        return words
