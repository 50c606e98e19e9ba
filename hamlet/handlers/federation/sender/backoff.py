"""Retry timing, from Synapse's `federation:` keys.

Two levels, as in Synapse. Within one transaction, a network failure or a
timeout, or a 5xx or 429 answer, is tried again `max_long_retries` times,
after 4 s, 16 s, 64 s... capped at `max_long_retry_delay` (a 429's
`retry_after_ms` is waited at least). A transaction that still fails backs
the whole destination off:
`destination_min_retry_interval` the first time, then the previous interval
times `destination_retry_multiplier`, capped at
`destination_max_retry_interval`. Both are jittered (x0.8 to x1.4, the cap
applied after) so that many servers failing together do not retry together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from hamlet.config.model import FederationConfig

JITTER = (0.8, 1.4)


@dataclass(frozen=True, slots=True)
class RetryTimings:
    """A destination's backoff state, as stored (Synapse's columns, milliseconds)."""

    failure_ts: int | None = None
    retry_last_ts: int = 0
    retry_interval: int = 0

    def retry_at(self) -> int:
        """When the destination may be tried again (0: now)."""
        return self.retry_last_ts + self.retry_interval if self.retry_last_ts else 0

    @property
    def failing(self) -> bool:
        return self.retry_last_ts != 0


class RetryPolicy:
    def __init__(self, config: FederationConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng or random.Random()

    def _jitter(self) -> float:
        low, high = JITTER
        return self._rng.uniform(low, high)

    def long_retry_delay_s(self, attempt: int) -> float:
        """Seconds to wait before try number `attempt + 1` of one transaction (0-based)."""
        delay_ms = min(1000 << (2 * (attempt + 1)), self.config.max_long_retry_delay)  # 4^n s
        return delay_ms * self._jitter() / 1000

    def after_failure(self, old: RetryTimings, now_ms: int, at_least_ms: int = 0) -> RetryTimings:
        """The destination's state after one more failed transaction
        (`at_least_ms`: what its last 429 asked us to wait)."""
        c = self.config
        if old.retry_interval:
            interval = int(old.retry_interval * c.destination_retry_multiplier * self._jitter())
        else:
            interval = c.destination_min_retry_interval
        interval = max(
            c.destination_min_retry_interval,
            min(max(interval, at_least_ms), c.destination_max_retry_interval),
        )
        failure_ts = old.failure_ts if old.failure_ts is not None else now_ms
        return RetryTimings(failure_ts, now_ms, interval)
