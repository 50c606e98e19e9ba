import gc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hamlet.runtime.wheel_timer import CHUNK, SPARE_RELEASE, WheelTimer


def test_empty_fetches() -> None:
    wheel: WheelTimer[str] = WheelTimer()
    assert wheel.fetch(0) == []
    assert wheel.fetch(1000) == []
    assert wheel.fetch_some(2000, 10) == []
    assert len(wheel) == 0
    assert wheel.next_due() is None


def test_returned_once_bucket_is_over_never_early() -> None:
    wheel: WheelTimer[str] = WheelTimer(bucket_size=5)
    wheel.insert(0, "a", 1)  # bucket [0, 5)
    wheel.insert(0, "b", 4.9)  # bucket [0, 5)
    wheel.insert(0, "c", 5)  # bucket [5, 10)
    wheel.insert(0, "d", 12)  # bucket [10, 15)
    assert len(wheel) == 4
    assert wheel.next_due() == 5

    assert wheel.fetch(1) == []
    assert wheel.fetch(4.99) == []
    assert sorted(wheel.fetch(5)) == ["a", "b"]
    assert wheel.fetch(5) == []
    assert wheel.fetch(9.9) == []
    assert wheel.fetch(10) == ["c"]
    assert len(wheel) == 1
    assert wheel.fetch(14) == []
    assert wheel.fetch(15) == ["d"]
    assert len(wheel) == 0


def test_ordering_earliest_buckets_first() -> None:
    wheel: WheelTimer[int] = WheelTimer(bucket_size=1)
    # Insert out of order; buckets come back in time order.
    for expiry in [7, 3, 9, 1, 5, 3.5, 0.5]:
        wheel.insert(0, int(expiry * 10), expiry)
    assert wheel.fetch(100) == [5, 10, 30, 35, 50, 70, 90]


def test_insert_in_the_past_comes_back_from_next_fetch() -> None:
    wheel: WheelTimer[str] = WheelTimer(bucket_size=5)
    assert wheel.fetch(100) == []
    wheel.insert(100, "old", 3)
    wheel.insert(100, "just_gone", 99)
    wheel.insert(100, "now", 100)  # bucket [100, 105): not over yet
    assert sorted(wheel.fetch(100)) == ["just_gone", "old"]
    assert wheel.fetch(104) == []
    assert wheel.fetch(105) == ["now"]


def test_insert_in_the_past_before_any_fetch() -> None:
    wheel: WheelTimer[str] = WheelTimer(bucket_size=5)
    wheel.insert(50, "a", 1)
    wheel.insert(50, "b", 20)
    assert sorted(wheel.fetch(50)) == ["a", "b"]


def test_far_jump_does_not_walk_empty_buckets() -> None:
    wheel: WheelTimer[str] = WheelTimer(bucket_size=0.001)
    wheel.insert(0, "a", 1)
    wheel.insert(0, "b", 1e9)
    # A walk over 1e12 empty bucket indexes would never finish.
    assert wheel.fetch(1e9 + 1) == ["a", "b"]
    wheel.insert(1e9 + 1, "c", 5e9)
    assert wheel.fetch(1e10) == ["c"]
    assert len(wheel) == 0


def test_bucket_size() -> None:
    wheel: WheelTimer[str] = WheelTimer(bucket_size=60)
    assert wheel.bucket_size == 60
    wheel.insert(0, "a", 1)
    wheel.insert(0, "b", 59)
    assert wheel.fetch(30) == []
    assert wheel.fetch(59.5) == []
    assert sorted(wheel.fetch(60)) == ["a", "b"]
    with pytest.raises(ValueError):
        WheelTimer(bucket_size=0)
    with pytest.raises(ValueError):
        WheelTimer(bucket_size=-1)


def test_duplicates_are_kept() -> None:
    wheel: WheelTimer[str] = WheelTimer(bucket_size=1)
    wheel.insert(0, "a", 0.5)
    wheel.insert(0, "a", 0.7)
    assert len(wheel) == 2
    assert wheel.fetch(1) == ["a", "a"]


def test_non_finite_expiry_refused() -> None:
    wheel: WheelTimer[str] = WheelTimer()
    with pytest.raises(ValueError):
        wheel.insert(0, "a", float("inf"))
    with pytest.raises(ValueError):
        wheel.insert(0, "a", float("nan"))
    assert len(wheel) == 0


def test_fetch_some_batches() -> None:
    wheel: WheelTimer[int] = WheelTimer(bucket_size=1)
    for i in range(25):
        wheel.insert(0, i, 0.5)  # one big bucket
    for i in range(25, 30):
        wheel.insert(0, i, 1.5)  # a later one
    wheel.insert(0, 99, 10)  # not due
    got: list[int] = []
    sizes = []
    while batch := wheel.fetch_some(5, 7):
        sizes.append(len(batch))
        got.extend(batch)
    assert sizes == [7, 7, 7, 7, 2]
    # All of the first bucket before any of the second.
    assert sorted(got[:25]) == list(range(25))
    assert sorted(got[25:]) == list(range(25, 30))
    assert len(wheel) == 1
    assert wheel.fetch_some(10.5, 7) == []
    assert wheel.fetch_some(11, 7) == [99]
    with pytest.raises(ValueError):
        wheel.fetch_some(10, 0)


def test_fetch_some_leftovers_stay_due() -> None:
    wheel: WheelTimer[int] = WheelTimer(bucket_size=1)
    for i in range(10):
        wheel.insert(0, i, 0.5)
    first = wheel.fetch_some(1, 4)
    assert len(first) == 4
    # Inserting more into the half-drained due bucket, and a normal fetch.
    wheel.insert(1, 100, 0.2)
    rest = wheel.fetch(1)
    assert sorted(first + rest) == [*range(10), 100]
    assert len(wheel) == 0


def test_clear() -> None:
    wheel: WheelTimer[int] = WheelTimer(bucket_size=1)
    wheel.insert(0, 1, 5)
    wheel.clear()
    assert len(wheel) == 0
    assert wheel.fetch(100) == []


@given(
    bucket_size=st.sampled_from([0.5, 1.0, 5.0, 60.0]),
    ops=st.lists(
        st.tuples(
            st.booleans(),
            st.floats(min_value=0, max_value=50),
            st.floats(min_value=-20, max_value=200),
        ),
        max_size=60,
    ),
)
def test_matches_model(bucket_size: float, ops: list[tuple[bool, float, float]]) -> None:
    """Against a naive model: every key comes back exactly once, never early,
    and no later than the first fetch at or past the end of its bucket."""
    wheel: WheelTimer[int] = WheelTimer(bucket_size=bucket_size)
    now = 0.0
    pending: dict[int, float] = {}
    for i, (is_fetch, step, expiry) in enumerate(ops):
        now += step
        if is_fetch:
            got = wheel.fetch(now)
            assert len(got) == len(set(got))
            for key in got:
                assert pending.pop(key) <= now  # never early
            for key, e in pending.items():
                bucket_end = (e // bucket_size + 1) * bucket_size
                assert now < bucket_end, (key, e, now)  # not late
        else:
            wheel.insert(now, i, now + expiry)
            pending[i] = now + expiry
        assert len(wheel) == len(pending)


@given(
    bucket_size=st.sampled_from([1.0, 5.0]),
    ops=st.lists(
        st.tuples(
            st.sampled_from(["insert", "fetch_some", "fetch"]),
            st.floats(min_value=0, max_value=20),
            st.floats(min_value=-20, max_value=100),
            st.integers(min_value=1, max_value=3 * CHUNK),
        ),
        max_size=25,
    ),
)
def test_many_keys_per_bucket_match_model(
    bucket_size: float, ops: list[tuple[str, float, float, int]]
) -> None:
    """Buckets of several chunks, drained in batches that cut through chunks
    while more keys go in: every key comes back once, never early, and a
    short batch means nothing more is due."""
    wheel: WheelTimer[int] = WheelTimer(bucket_size=bucket_size)
    now = 0.0
    pending: dict[int, float] = {}
    next_key = 0
    for kind, step, expiry, count in ops:
        now += step
        if kind == "insert":
            for _ in range(count):
                wheel.insert(now, next_key, now + expiry)
                pending[next_key] = now + expiry
                next_key += 1
        else:
            got = wheel.fetch_some(now, count) if kind == "fetch_some" else wheel.fetch(now)
            assert len(got) == len(set(got))
            for key in got:
                assert pending.pop(key) <= now
            if kind == "fetch" or len(got) < count:
                for e in pending.values():
                    assert now < (e // bucket_size + 1) * bucket_size
        assert len(wheel) == len(pending)
    assert sorted(wheel.fetch(now + 1000)) == sorted(pending)


def _lists_in(wheel: WheelTimer[str]) -> list[list[str]]:
    """The chunks of every bucket of `wheel`."""
    chunks: list[list[str]] = []
    for slot in gc.get_referents(wheel):
        if isinstance(slot, dict):
            for bucket in slot.values():
                chunks.extend(bucket)
    return chunks


def test_no_list_holds_more_than_a_chunk_of_keys() -> None:
    wheel: WheelTimer[str] = WheelTimer(bucket_size=1)
    for i in range(10 * CHUNK + 3):
        wheel.insert(0, f"k{i}", 0.5)
    chunks = _lists_in(wheel)
    assert len(chunks) == 11
    assert max(map(len, chunks)) == CHUNK
    assert sum(map(len, chunks)) == len(wheel)


def test_keys_filed_again_go_into_containers_the_collector_has_promoted() -> None:
    """Moving many due keys into a later bucket creates no young container
    holding them all: the collector would walk it at each young collection
    until it is promoted (pauses of 10-20 ms for a million keys)."""
    wheel: WheelTimer[str] = WheelTimer(bucket_size=1)
    keys = [f"@user{i}:example.com" for i in range(100 * CHUNK)]
    for key in keys:
        wheel.insert(0, key, 0.5)
    batch_size = 1000
    gc.collect()  # what was filed long ago has been promoted
    gc.disable()
    try:
        batches = 0
        while batch := wheel.fetch_some(1, batch_size):
            batches += 1
            for key in batch:
                wheel.insert(1, key, 7.5)
        young = {id(o) for generation in (0, 1) for o in gc.get_objects(generation)}
    finally:
        gc.enable()
    chunks = _lists_in(wheel)
    assert sum(map(len, chunks)) == len(keys)
    young_refs = sum(len(chunk) for chunk in chunks if id(chunk) in young)
    # A batch that cuts through a chunk may need one more than it emptied;
    # everything else reuses emptied chunks.
    assert young_refs <= batch_size + batches * CHUNK
    assert young_refs < len(keys) // 4
    assert sorted(wheel.fetch(8)) == sorted(keys)


def test_emptied_chunks_are_kept_during_a_drain_and_not_while_idle() -> None:
    wheel: WheelTimer[int] = WheelTimer(bucket_size=1)
    for i in range(40 * CHUNK):
        wheel.insert(0, i, 0.5)

    def spares() -> list[list[int]]:
        # The wheel's slot that is a list of lists (the heap holds ints).
        slots = [s for s in gc.get_referents(wheel) if isinstance(s, list) and s]
        return [chunk for s in slots if isinstance(s[0], list) for chunk in s]

    assert len(wheel.fetch_some(1, 20 * CHUNK)) == 20 * CHUNK
    assert len(spares()) == 20
    assert all(chunk == [] for chunk in spares())
    # The next inserts fill them again rather than new lists.
    kept = {id(chunk) for chunk in spares()}
    for i in range(3 * CHUNK):
        wheel.insert(1, -i, 7.5)
    assert len(spares()) == 17
    assert len(kept - {id(chunk) for chunk in spares()}) == 3
    # Draining the rest and finding nothing more due lets them go.
    assert len(wheel.fetch_some(1, 100 * CHUNK)) == 20 * CHUNK
    assert spares() == []


def test_spares_are_let_go_a_bounded_number_at_a_time() -> None:
    wheel: WheelTimer[int] = WheelTimer(bucket_size=1)
    n = (SPARE_RELEASE + 10) * CHUNK
    for i in range(n):
        wheel.insert(0, i, 0.5)
    assert len(wheel.fetch_some(1, n)) == n
    spare = [s for s in gc.get_referents(wheel) if isinstance(s, list) and s]
    assert [len(s) for s in spare] == [SPARE_RELEASE + 10]
    assert wheel.fetch_some(1, 10) == []  # nothing due: lets SPARE_RELEASE go
    assert [len(s) for s in spare] == [10]
    assert wheel.fetch_some(2, 10) == []
    assert spare == [[]]
