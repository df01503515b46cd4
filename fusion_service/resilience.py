"""Retry with jittered exponential back-off, and a circuit breaker: how calls to a model server survive
its hiccups without letting a dead one slow every request down."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 2
    initial_backoff_s: float = 0.05
    multiplier: float = 2.0
    max_backoff_s: float = 1.0

    def backoff_s(self, retry: int, rng: random.Random | None = None) -> float:
        """Pause before retry number `retry` (0-based): "full jitter", uniform up to the exponential cap,
        so that many callers failing at once do not all come back at once."""
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier**retry)
        return (rng or random).uniform(0.0, cap)


class CircuitBreaker:
    """Closed: calls go through. After `failure_threshold` failures in a row it opens: calls are refused
    at once for `open_s`. Then it lets a single trial call through (half-open); its success closes the
    breaker, its failure opens it again."""

    def __init__(self, failure_threshold: int, open_s: float, clock: Callable[[], float] = time.monotonic):
        if failure_threshold < 1 or open_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and open_s > 0")
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def is_open(self) -> bool:
        """True while calls are being refused (open, or half-open with its trial call running)."""
        if self._opened_at is None:
            return False
        return self._trial_running or self._clock() - self._opened_at < self.open_s

    @property
    def failures(self) -> int:
        return self._failures

    def retry_in_s(self) -> float:
        """Seconds until the next trial call may go through (0 when calls go through now)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self.open_s - (self._clock() - self._opened_at))

    def try_acquire(self) -> bool:
        """May a call go through now? When it may, report its outcome with success(), failure() or release()."""
        if self._opened_at is None:
            return True
        if self.is_open:
            return False
        self._trial_running = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def failure(self) -> None:
        self._failures += 1
        self._trial_running = False
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()

    def release(self) -> None:
        """The call ended without telling anything about the server (the caller gave up)."""
        self._trial_running = False
