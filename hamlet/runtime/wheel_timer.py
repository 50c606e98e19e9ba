"""A wheel timer: hands back keys once the time bucket they fell in is over.

Keys are grouped into buckets of `bucket_size` seconds by their expiry. A
key inserted with expiry `e` lives in bucket `floor(e / bucket_size)` and is
returned by the first `fetch(now)` whose `now` is at or past the end of that
bucket: never early, and at most one bucket (plus the caller's polling
interval) late.

Only non-empty buckets exist: they sit in a dict keyed by bucket index, and
their indexes in a min-heap, so a fetch touches only the buckets that are
due (however far `now` jumps) and costs O(keys returned + due buckets * log
buckets). `fetch_some` returns at most `max_keys` keys, so a caller can drain
one enormous due bucket in bounded steps.

A bucket is a list of chunks, lists of at most `CHUNK` keys, rather than
one list. Python's garbage collector walks every reference a young container
holds at each young collection until the container has survived two of
them; old containers are left alone. One list that a caller fills with a
million keys in a few moments (a rate limiter filing its keys again) is
walked whole, twice, at collections that come after the filing: pauses of
10-20 ms. Chunks that `fetch_some` emptied are kept until nothing more is
due and filled again by the next inserts, so keys moved from due buckets
into later ones land in containers the collector has mostly promoted
already; fresh ones hold no more than `CHUNK` keys each. An emptied chunk
is only a list header (its slots are freed). They are let go only once
nothing is due, `SPARE_RELEASE` per `fetch_some`: freeing them one by one
during a long drain made the next young collection about 4x slower at a
million keys (bench/ratelimit.py, drop phase; the young objects allocated
meanwhile land among the freed blocks, it seems).

The wheel does not deduplicate: a key inserted twice is returned twice.
Callers that want a key in the wheel once keep track of that themselves.

`now` is expected never to go backwards between calls; if it does, the
wheel keeps using the latest `now` it has seen.
"""

from __future__ import annotations

import heapq
import math
from typing import Final, Generic, TypeVar

K = TypeVar("K")

# Emptied chunks let go by a `fetch_some` that finds nothing more due: a
# bounded step (freeing is a cache miss a list), and the rest go at the
# next calls or are filled again meanwhile.
SPARE_RELEASE: Final = 512

# Keys per chunk of a bucket. A size a list grows to exactly by appends
# (CPython over-allocates on the way: 0, 4, 8, 16, ... 108, 128), so a full
# chunk wastes no slots; 72 bytes of list header are under 0.6 bytes a key.
CHUNK: Final = 128


class WheelTimer(Generic[K]):
    __slots__ = ("_bucket_size", "_buckets", "_heap", "_len", "_next_index", "_spare")

    def __init__(self, bucket_size: float = 5.0) -> None:
        if not bucket_size > 0 or not math.isfinite(bucket_size):
            raise ValueError(f"bucket_size must be a positive number, not {bucket_size!r}")
        self._bucket_size = bucket_size
        # bucket index -> its chunks; only non-empty buckets are present, and
        # they hold no empty chunk. Inserts fill the last chunk, fetches take
        # from the end: order inside a bucket is free.
        self._buckets: dict[int, list[list[K]]] = {}
        # The indexes of self._buckets, as a min-heap (each index once).
        self._heap: list[int] = []
        # The lowest bucket index that is not yet over at the latest `now`
        # seen. Buckets below it are due: anything inserted with an expiry
        # already past goes into bucket `_next_index - 1`, so expired inserts
        # share one bucket and come back from the very next fetch.
        self._next_index: int | None = None
        self._len = 0
        # Empty chunks from due buckets, for the next chunks needed.
        self._spare: list[list[K]] = []

    @property
    def bucket_size(self) -> float:
        return self._bucket_size

    def __len__(self) -> int:
        return self._len

    def _index(self, t: float) -> int:
        return math.floor(t / self._bucket_size)

    def _advance_to(self, now: float) -> int:
        """Note `now`; return the index of the bucket that holds `now`."""
        current = self._index(now)
        if self._next_index is None or current > self._next_index:
            self._next_index = current
        return self._next_index

    def _chunk_of(self, key: K) -> list[K]:
        spare = self._spare
        if spare:
            chunk = spare.pop()
            chunk.append(key)
            return chunk
        return [key]

    def insert(self, now: float, key: K, expiry: float) -> None:
        """Add `key`, to be returned once the bucket holding `expiry` is over."""
        if not math.isfinite(expiry):
            raise ValueError(f"expiry must be finite, not {expiry!r}")
        next_index = self._advance_to(now)
        index = self._index(expiry)
        if index < next_index - 1:
            index = next_index - 1
        bucket = self._buckets.get(index)
        if bucket is None:
            self._buckets[index] = [self._chunk_of(key)]
            heapq.heappush(self._heap, index)
        else:
            chunk = bucket[-1]
            if len(chunk) < CHUNK:
                chunk.append(key)
            else:
                bucket.append(self._chunk_of(key))
        self._len += 1

    def fetch(self, now: float) -> list[K]:
        """Remove and return every key whose bucket is over at `now`."""
        limit = self._advance_to(now)
        heap = self._heap
        buckets = self._buckets
        result: list[K] = []
        while heap and heap[0] < limit:
            for chunk in buckets.pop(heapq.heappop(heap)):
                result.extend(chunk)
        self._len -= len(result)
        # Nothing is due any more: keep no spare chunks while idle.
        self._spare = []
        return result

    def fetch_some(self, now: float, max_keys: int) -> list[K]:
        """Like `fetch`, but return at most `max_keys` keys, earliest buckets first.

        Keys left over stay due and come back from the next call. Returns
        fewer than `max_keys` keys only when nothing more is due.
        """
        if max_keys <= 0:
            raise ValueError(f"max_keys must be positive, not {max_keys!r}")
        limit = self._advance_to(now)
        heap = self._heap
        buckets = self._buckets
        spare = self._spare
        result: list[K] = []
        wanted = max_keys
        while wanted and heap and heap[0] < limit:
            index = heap[0]
            bucket = buckets[index]
            while wanted and bucket:
                chunk = bucket[-1]
                if len(chunk) <= wanted:
                    bucket.pop()
                    result.extend(chunk)
                    wanted -= len(chunk)
                    chunk.clear()
                    spare.append(chunk)
                else:
                    result.extend(chunk[-wanted:])
                    del chunk[-wanted:]
                    wanted = 0
            if not bucket:
                heapq.heappop(heap)
                del buckets[index]
        self._len -= len(result)
        if wanted:
            # Nothing more is due: spares are not kept while idle.
            del spare[-SPARE_RELEASE:]
        return result

    def next_due(self) -> float | None:
        """When the earliest stored bucket will be over, or None if empty."""
        if not self._heap:
            return None
        return (self._heap[0] + 1) * self._bucket_size

    def clear(self) -> None:
        self._buckets = {}
        self._heap = []
        self._len = 0
        self._spare = []
