"""The search term parser and what an event is found by (pure)."""

from __future__ import annotations

import pytest

from hamlet.core.search_query import (
    MAX_QUERY_CHARS,
    Clause,
    SearchQuery,
    SearchQueryError,
    parse_search_query,
    searchable_text,
)
from hamlet.storage.stores.search import fts5_match


def test_words_are_anded_and_lowercased() -> None:
    assert parse_search_query("Martians  AND men") == SearchQuery(
        (Clause((("martians",), ("and",), ("men",))),)
    )


def test_phrases_exclusions_and_or() -> None:
    query = parse_search_query('"red planet" -moon or Mars')
    assert query.clauses == (
        Clause((("red", "planet"),), (("moon",),)),
        Clause((("mars",),)),
    )
    assert query.words == ["red", "planet", "mars"]


def test_operators_of_the_engines_are_text() -> None:
    assert parse_search_query("NEAR(a b) * ^c col:d").words == ["near", "a", "b", "c", "col", "d"]
    # An unbalanced quote runs to the end; punctuation alone finds nothing.
    assert parse_search_query('"open phrase').clauses == (Clause((("open", "phrase"),)),)
    assert parse_search_query('" * - ( )').clauses == ()
    # Only exclusions: nothing to look for.
    assert parse_search_query("-cat -dog").clauses == ()
    # A leading or trailing "or" is a word / ignored.
    assert parse_search_query("or cat or").words == ["or", "cat"]


def test_fts5_rendering_quotes_every_term() -> None:
    query = parse_search_query('cat "big dog" -mouse OR bird')
    assert fts5_match(query) == '("cat" AND "big dog") NOT "mouse" OR ("bird")'


def test_bounds() -> None:
    with pytest.raises(SearchQueryError):
        parse_search_query("a" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(SearchQueryError):
        parse_search_query(" ".join(["w"] * 33))
    assert len(parse_search_query(" ".join(["w"] * 32)).words) == 32


def test_searchable_text() -> None:
    assert searchable_text("m.room.message", {"body": "hi"}) == "hi"
    assert searchable_text("m.room.message", {"body": 5}) is None
    assert searchable_text("m.room.name", {"name": "Room"}) == "Room"
    assert searchable_text("m.room.encrypted", {"body": "x"}) is None
    rich = {
        "topic": "plain",
        "m.topic": {
            "m.text": [
                {"mimetype": "text/html", "body": "<b>html</b>"},
                {"body": "plain"},
                {"body": "other words"},
            ]
        },
    }
    assert searchable_text("m.room.topic", rich) == "plain\nother words"
    assert searchable_text("m.room.topic", {"topic": ""}) is None
