"""Canonical JSON against every example in the spec appendix."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hamlet.core.canonical_json import (
    MAX_DEPTH,
    decode_json,
    encode_canonical_json,
    nesting_depth,
    validate_canonical_json,
)
from hamlet.core.errors import CanonicalJsonError

APPENDIX_EXAMPLES = [
    ("{}", "{}"),
    ('{"one": 1, "two": "Two"}', '{"one":1,"two":"Two"}'),
    ('{"b": "2", "a": "1"}', '{"a":"1","b":"2"}'),
    ('{"b":"2","a":"1"}', '{"a":"1","b":"2"}'),
    (
        """{"auth": {"success": true, "mxid": "@john.doe:example.com",
        "profile": {"display_name": "John Doe", "three_pids": [
        {"medium": "email", "address": "john.doe@example.org"},
        {"medium": "msisdn", "address": "123456789"}]}}}""",
        '{"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe",'
        '"three_pids":[{"address":"john.doe@example.org","medium":"email"},'
        '{"address":"123456789","medium":"msisdn"}]},"success":true}}',
    ),
    ('{"a": "日本語"}', '{"a":"日本語"}'),
    ('{"本": 2, "日": 1}', '{"日":1,"本":2}'),
    ('{"a": "\\u65E5"}', '{"a":"日"}'),
    ('{"a": null}', '{"a":null}'),
    ('{"a": -0, "b": 1e10}', '{"a":0,"b":10000000000}'),
]


@pytest.mark.parametrize(("given", "expected"), APPENDIX_EXAMPLES)
def test_appendix_examples(given: str, expected: str) -> None:
    assert encode_canonical_json(json.loads(given)) == expected.encode("utf-8")
    assert encode_canonical_json(decode_json(given)) == expected.encode("utf-8")


def test_escaping_follows_grammar() -> None:
    # Every ASCII control character: dedicated escapes where they exist, \u00XX otherwise
    # (lower-case hex), nothing else escaped (not even / or DEL or U+2028).
    text = "".join(chr(i) for i in range(0x20)) + '"\\/\x7f\u2028\U0001f600'
    encoded = encode_canonical_json({"a": text})
    expected = (
        '{"a":"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007\\b\\t\\n\\u000b\\f\\r'
        "\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017\\u0018\\u0019"
        '\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\\"\\\\/\x7f\u2028\U0001f600"}'
    )
    assert encoded == expected.encode("utf-8")
    # Same as the reference implementation in the appendix.
    reference = json.dumps(
        {"a": text}, ensure_ascii=False, separators=(",", ":"), sort_keys=True
    ).encode("utf-8")
    assert encoded == reference


def test_keys_sorted_by_codepoint_including_astral() -> None:
    # UTF-16 ordering would put U+1F600 before U+FFFF; code point order must not.
    assert encode_canonical_json({"\U0001f600": 1, "\uffff": 2, "a": 3}) == (
        '{"a":3,"\uffff":2,"\U0001f600":1}'.encode()
    )


@pytest.mark.parametrize("value", [2**53 - 1, -(2**53) + 1, 0])
def test_integer_range_edges_accepted(value: int) -> None:
    assert encode_canonical_json([value]) == f"[{value}]".encode()


@pytest.mark.parametrize(
    "value",
    [2**53, -(2**53), 1.5, float("nan"), float("inf"), {1: "x"}, {"a": object()}, "\ud800"],
)
def test_unencodable_values_rejected(value: Any) -> None:
    with pytest.raises(CanonicalJsonError):
        encode_canonical_json(value)


def test_validate_is_strict_about_floats() -> None:
    validate_canonical_json({"a": [1, "x", None, True]})
    with pytest.raises(CanonicalJsonError):
        validate_canonical_json({"a": 1.0})


def test_booleans_are_not_integers() -> None:
    assert encode_canonical_json({"t": True, "f": False}) == b'{"f":false,"t":true}'


def test_decode_json_errors() -> None:
    with pytest.raises(CanonicalJsonError):
        decode_json(b"{not json")


def _nested(levels: int, *, lists: bool = False) -> Any:
    value: Any = [] if lists else {}
    for _ in range(levels - 1):
        value = [value] if lists else {"a": value}
    return value


@pytest.mark.parametrize("lists", [False, True])
def test_nesting_beyond_the_limit_is_a_canonical_json_error(lists: bool) -> None:
    assert encode_canonical_json(_nested(MAX_DEPTH, lists=lists))
    for levels in (MAX_DEPTH + 1, 600, 1023):
        with pytest.raises(CanonicalJsonError):
            encode_canonical_json(_nested(levels, lists=lists))
        with pytest.raises(CanonicalJsonError):
            validate_canonical_json(_nested(levels, lists=lists))


def test_nesting_depth() -> None:
    assert nesting_depth(1, stop_above=10) == 0
    assert nesting_depth({}, stop_above=10) == 1
    assert nesting_depth({"a": [1, {"b": []}], "c": {}}, stop_above=10) == 4
    assert nesting_depth(_nested(5000, lists=True), stop_above=5000) == 5000
    # Counting stops soon after the bound.
    assert nesting_depth(_nested(5000), stop_above=100) == 101
