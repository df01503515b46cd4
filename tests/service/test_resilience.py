import random

import pytest

from fusion_service.resilience import CircuitBreaker, RetryPolicy


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_back_off_is_jittered_below_an_exponential_cap():
    policy = RetryPolicy(retries=5, initial_backoff_s=0.1, multiplier=2.0, max_backoff_s=0.5)
    rng = random.Random(0)
    for retry, cap in enumerate([0.1, 0.2, 0.4, 0.5, 0.5]):
        pauses = [policy.backoff_s(retry, rng) for _ in range(200)]
        assert all(0 <= p <= cap for p in pauses)
        assert len(set(pauses)) > 100  # jittered, so failing callers do not come back in step


def test_breaker_opens_after_consecutive_failures_and_refuses_calls():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=3, open_s=5.0, clock=clock)
    for _ in range(2):
        assert breaker.try_acquire()
        breaker.failure()
    assert breaker.try_acquire()
    breaker.success()  # a success resets the count
    for _ in range(3):
        assert breaker.try_acquire()
        breaker.failure()
    assert breaker.is_open and not breaker.try_acquire()
    assert breaker.retry_in_s() == pytest.approx(5.0)


def test_breaker_lets_one_trial_through_after_the_pause():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=5.0, clock=clock)
    breaker.try_acquire()
    breaker.failure()
    clock.now += 5.0
    assert breaker.try_acquire()  # the trial
    assert not breaker.try_acquire()  # only one at a time
    breaker.failure()  # the trial failed: open again for another pause
    assert not breaker.try_acquire()
    clock.now += 5.0
    assert breaker.try_acquire()
    breaker.success()
    assert not breaker.is_open and breaker.try_acquire() and breaker.try_acquire()


def test_a_trial_whose_caller_gave_up_frees_the_way_for_the_next():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, open_s=1.0, clock=clock)
    breaker.try_acquire()
    breaker.failure()
    clock.now += 1.0
    assert breaker.try_acquire()
    breaker.release()
    assert breaker.try_acquire()
