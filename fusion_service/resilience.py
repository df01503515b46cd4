"""How calls to a model server survive its hiccups without letting a failing one slow every request down:
gRPC's own retries of UNAVAILABLE (RetryPolicy, given to the channel as service config) and a circuit breaker.

gRPC's `retryPolicy` with `retryThrottling` replaces a loop of our own. What comes with it (measured in
docs/performance.md, "Model-server retries"): the call's deadline covers every attempt and back-off, and a
back-off that would pass it is waited out to DEADLINE_EXCEEDED (grpc/grpc#39622); retries happen out of the
application's sight, so there is no retry counter; back-offs of about 1 ms make calls hang until their
deadline (grpc/grpc#41036), hence MIN_BACKOFF_S; gRPC makes at most 5 attempts, hence MAX_RETRIES.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

MIN_BACKOFF_S = 0.01
MAX_RETRIES = 4


@dataclass(frozen=True)
class RetryPolicy:
    """Retry UNAVAILABLE up to `retries` times, the n-th after a jittered back-off of about
    initial_backoff_s * multiplier**(n-1), at most max_backoff_s. Throttling stops retrying while failures
    dominate: each failed call takes a token, each success gives back `throttle_token_ratio`, and retries go
    out only while more than half of `throttle_max_tokens` are left."""

    retries: int = 2
    initial_backoff_s: float = 0.05
    multiplier: float = 2.0
    max_backoff_s: float = 1.0
    throttle_max_tokens: int = 10
    throttle_token_ratio: float = 0.1

    def __post_init__(self):
        if not 0 <= self.retries <= MAX_RETRIES:
            raise ValueError(
                f"retries must be between 0 and {MAX_RETRIES} (gRPC makes at most {MAX_RETRIES + 1} attempts)"
            )
        if self.initial_backoff_s < MIN_BACKOFF_S or self.multiplier < 1:
            raise ValueError(f"back-off must start at {MIN_BACKOFF_S} s or more and not shrink")

    def service_config(self, service: str, method: str) -> str:
        """The channel's `grpc.service_config` JSON: this policy for calls to service/method."""
        config: dict = {"methodConfig": [{"name": [{"service": service, "method": method}]}]}
        if self.retries:
            config["methodConfig"][0]["retryPolicy"] = {
                "maxAttempts": self.retries + 1,
                "initialBackoff": _duration(self.initial_backoff_s),
                "maxBackoff": _duration(self.max_backoff_s),
                "backoffMultiplier": self.multiplier,
                "retryableStatusCodes": ["UNAVAILABLE"],
            }
            config["retryThrottling"] = {"maxTokens": self.throttle_max_tokens, "tokenRatio": self.throttle_token_ratio}
        return json.dumps(config)


def _duration(seconds: float) -> str:
    """A google.protobuf.Duration in its JSON form."""
    return f"{seconds:.9f}s"


class CircuitBreaker:
    """Closed: calls go through. After `failure_threshold` failures in a row it opens: calls are refused
    at once for `open_s`. Then it lets a single trial call through (half-open); its success closes the
    breaker, its failure opens it again.

    A server that refuses connections costs each call little without it: such a call fails within about a
    millisecond, and retry throttling stops its retries after a call or two. What costs each call time is a
    server that hangs or answers too slowly: every call would wait out its whole deadline before the other
    modality's answer could go out. After `failure_threshold` failed calls the server is skipped, so requests
    are answered from the other modality at once, and an overloaded server gets room to recover.
    """

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
