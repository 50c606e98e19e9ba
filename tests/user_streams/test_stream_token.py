"""StreamToken and StreamIdGenerator: pure units."""

from __future__ import annotations

import pytest

from hamlet.handlers.common.errors import MatrixError
from hamlet.handlers.common.streams import STREAM_NAMES, StreamToken
from hamlet.storage.stream_ids import StreamIdGenerator


def test_token_round_trips() -> None:
    token = StreamToken(12, 3, 4, 5, 6, 7, 0)
    assert token.to_string() == "s12_3_4_5_6_7_0"
    assert StreamToken.parse(token.to_string()) == token
    assert StreamToken.parse(StreamToken().to_string()) == StreamToken()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "s",
        "x1_2_3_4_5_6_7",
        "s1_2_3_",
        "s_1",
        "s" + "_".join(["1"] * 33),
        "s1_2_3_4_5_6_-7",
        "s1__3_4_5_6_7",
        "s1_2_3_4_5_6_7 ",
        "s1_2_3_4_5_6_a",
        "s" + "9" * 40 + "_0_0_0_0_0_0",
    ],
)
def test_garbage_is_a_400(text: str) -> None:
    with pytest.raises(MatrixError) as info:
        StreamToken.parse(text)
    assert info.value.status == 400
    assert info.value.errcode == "M_INVALID_PARAM"


def test_a_token_from_before_a_stream_was_added_still_parses() -> None:
    # Minted when the token had only the first streams: the others read as 0.
    old = StreamToken.parse("s12_3_4")
    assert old == StreamToken(events=12, typing=3, receipts=4)
    assert StreamToken.parse("s7") == StreamToken(events=7)
    six = "_".join(str(n) for n in range(1, len(STREAM_NAMES)))
    assert StreamToken.parse("s" + six).get(STREAM_NAMES[-1]) == 0


def test_a_token_from_a_newer_version_keeps_the_streams_it_knows() -> None:
    known = StreamToken(12, 3, 4, 5, 6, 7, 8)
    newer = known.to_string() + "_99_100"
    assert StreamToken.parse(newer) == known
    assert StreamToken.parse(newer).to_string() == known.to_string()


def test_copy_and_replace_and_is_after() -> None:
    token = StreamToken()
    moved = token.copy_and_replace("receipts", 9)
    assert moved.receipts == 9 and token.receipts == 0
    assert moved.is_after(token)
    assert not token.is_after(moved)
    assert not token.is_after(token)
    # Ahead in one stream, behind in another: both are "after" the other.
    other = StreamToken(events=5)
    assert moved.is_after(other) and other.is_after(moved)
    with pytest.raises(KeyError):
        token.copy_and_replace("nope", 1)


def test_ahead_streams_finds_tokens_from_before_a_restart() -> None:
    current = StreamToken(events=10, typing=0, presence=2)
    old = StreamToken(events=10, typing=50, presence=1)
    assert old.ahead_streams(current) == ["typing"]
    assert set(STREAM_NAMES) >= set(old.ahead_streams(current))


def test_stream_ids_current_waits_for_unfinished_ids() -> None:
    gen = StreamIdGenerator("test")
    a, b, c = gen.next(), gen.next(), gen.next()
    assert (a, b, c) == (1, 2, 3)
    assert gen.current() == 0
    gen.finish(b)
    assert gen.current() == 0  # 1 is still being written
    gen.finish(a)
    assert gen.current() == 2
    gen.finish(c)
    assert gen.current() == 3
    with gen.allocate() as d:
        assert gen.current() == 3
    assert d == 4 and gen.current() == 4


def test_stream_ids_finish_even_on_failure() -> None:
    gen = StreamIdGenerator("test")
    with pytest.raises(RuntimeError), gen.allocate():
        raise RuntimeError("write failed")
    assert gen.current() == 1
