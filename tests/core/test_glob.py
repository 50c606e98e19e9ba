"""The push rule glob matcher: regex semantics without backtracking, bounded work."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamlet.core.glob import LOOP_COST, PIECE_COST, BudgetExhaustedError, Glob, WorkBudget, fold

_WORD = "A-Za-z0-9_"


def regex_matches(pattern: str, value: str, *, words: bool) -> bool:
    """The backtracking regex the matcher replaced: the reference semantics
    (with `\\Z` for its `$`, which also matched before a final newline)."""
    body = "".join(".*?" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    if words:
        regex = re.compile(f"(?:^|[^{_WORD}]){body}(?:[^{_WORD}]|\\Z)", re.IGNORECASE | re.DOTALL)
        return regex.search(value) is not None
    return re.compile(f"^{body}\\Z", re.IGNORECASE | re.DOTALL).match(value) is not None


def glob_matches(pattern: str, value: str, *, words: bool, steps: int = 10**9) -> bool:
    budget = WorkBudget(steps)
    glob = Glob.compile(pattern)
    if words:
        return glob.matches(fold(value), budget, original=value)
    return glob.matches(fold(value), budget)


CASES = [
    ("cake", "I like cake", True),
    ("cake", "I like cakes", False),
    ("cake*", "I like cakes", True),
    ("c?ke", "my CAKE.", True),
    ("*", "", True),
    ("lunc?*", "Lunch plans", True),
    ("foo bar", "a foo  bar", False),
    ("foo*bar", "foo.x.bar!", True),
    ("@room", "hey @room!", True),
    ("@room", "hey@room", False),
    ("a*a", "a", False),
    ("??", "é!", True),
]


@pytest.mark.parametrize(("pattern", "value", "_expected"), CASES)
@pytest.mark.parametrize("words", [True, False])
def test_known_cases_agree_with_regex(
    pattern: str, value: str, _expected: bool, words: bool
) -> None:
    assert glob_matches(pattern, value, words=words) == regex_matches(pattern, value, words=words)


@pytest.mark.parametrize(("pattern", "value", "expected"), CASES)
def test_known_cases_on_words(pattern: str, value: str, expected: bool) -> None:
    assert glob_matches(pattern, value, words=True) is expected


# Few letters so that patterns and values overlap often; word and non-word
# characters; a few non-ASCII letters with plain lower-case forms.
ALPHABET = "abAB_1 .!*?éÉ\n"
patterns = st.text(alphabet=ALPHABET, max_size=10)
values = st.text(alphabet=ALPHABET.replace("*", "").replace("?", "") + "*?", max_size=30)


@settings(max_examples=3000, deadline=None)
@given(patterns, values, st.booleans())
def test_agrees_with_the_regex(pattern: str, value: str, words: bool) -> None:
    assert glob_matches(pattern, value, words=words) == regex_matches(pattern, value, words=words)


def test_literal_takes_wildcards_literally() -> None:
    glob = Glob.literal("A*b?")
    budget = WorkBudget(10**6)
    assert glob.matches(fold("x a*B? y"), budget, original="x a*B? y")
    assert not glob.matches(fold("x aXXbZ y"), budget, original="x aXXbZ y")


def steps_used(pattern: str, value: str, *, words: bool) -> int:
    budget = WorkBudget(10**12)
    glob = Glob.compile(pattern)
    glob.matches(fold(value), budget, original=value if words else None)
    return 10**12 - budget.remaining


@pytest.mark.parametrize(
    "pattern",
    ["*a*a*a*b", "*a*a*a*a*a*a*a*b", "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", "*a?a?a?a?a?a?b*"],
)
@pytest.mark.parametrize("words", [True, False])
def test_pathological_patterns_do_linear_work(pattern: str, words: bool) -> None:
    """What took the regex seconds to minutes costs a small multiple of the
    value's length, and doubling the value about doubles the work."""
    short, long = "a" * 2_000, "a" * 4_000
    used_short = steps_used(pattern, short, words=words)
    used_long = steps_used(pattern, long, words=words)
    # At most one loop pass and one check per pattern character per value character.
    assert used_long <= (LOOP_COST + PIECE_COST * len(pattern)) * len(long)
    assert used_long <= 2.5 * used_short
    assert not glob_matches(pattern, long, words=words)


def test_repeated_anchor_misses_are_charged_to_the_budget() -> None:
    # `?` between literals: every `a` is a candidate start that then fails.
    with pytest.raises(BudgetExhaustedError):
        glob_matches("a?a?a?a?a?a?a?a?a?b", "a" * 100_000, words=True, steps=100_000)


def test_budget_bounds_word_retries() -> None:
    # The first segment occurs everywhere but never at a word start.
    value = "x" + "ab" * 50_000
    with pytest.raises(BudgetExhaustedError):
        glob_matches("ab*", value, words=True, steps=50_000)
