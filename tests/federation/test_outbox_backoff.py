"""RetryPolicy: the long-retry delays and the destination backoff, as plain data."""

from __future__ import annotations

import random

from hamlet.config.model import FederationConfig
from hamlet.handlers.federation.sender.backoff import RetryPolicy, RetryTimings


class Fixed(random.Random):
    """Jitter pinned to one factor."""

    def __init__(self, factor: float) -> None:
        super().__init__(0)
        self.factor = factor

    def uniform(self, a: float, b: float) -> float:
        assert (a, b) == (0.8, 1.4)
        return self.factor


def test_long_retry_delays_grow_by_four_up_to_the_cap() -> None:
    policy = RetryPolicy(FederationConfig(max_long_retry_delay=60_000), Fixed(1.0))
    assert [policy.long_retry_delay_s(n) for n in range(5)] == [4, 16, 60, 60, 60]
    jittered = RetryPolicy(FederationConfig(max_long_retry_delay=60_000), Fixed(1.4))
    assert jittered.long_retry_delay_s(0) == 4 * 1.4


def test_destination_backoff_multiplies_and_caps() -> None:
    config = FederationConfig(
        destination_min_retry_interval=600_000,
        destination_retry_multiplier=2,
        destination_max_retry_interval=3_000_000,
    )
    policy = RetryPolicy(config, Fixed(1.0))
    t = policy.after_failure(RetryTimings(), 1_000)
    assert t == RetryTimings(failure_ts=1_000, retry_last_ts=1_000, retry_interval=600_000)
    assert t.failing and t.retry_at() == 601_000
    intervals = []
    for now in range(2_000, 7_000, 1_000):
        t = policy.after_failure(t, now)
        intervals.append(t.retry_interval)
        assert t.failure_ts == 1_000 and t.retry_last_ts == now
    assert intervals == [1_200_000, 2_400_000, 3_000_000, 3_000_000, 3_000_000]
    # Jitter below 1 never takes the interval under the minimum.
    low = RetryPolicy(FederationConfig(destination_retry_multiplier=1), Fixed(0.8))
    first = low.after_failure(RetryTimings(), 0)
    assert low.after_failure(first, 1).retry_interval == first.retry_interval
    assert not RetryTimings().failing and RetryTimings().retry_at() == 0
