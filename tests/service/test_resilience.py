import json

import pytest

from fusion_service.resilience import CircuitBreaker, RetryPolicy


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_retry_policy_is_handed_to_grpc_as_service_config_for_one_method():
    policy = RetryPolicy(retries=3, initial_backoff_s=0.1, multiplier=2.0, max_backoff_s=0.5)
    config = json.loads(policy.service_config("tensorflow.serving.PredictionService", "Predict"))
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": "tensorflow.serving.PredictionService", "method": "Predict"}]
    assert method["retryPolicy"] == {
        "maxAttempts": 4, "initialBackoff": "0.100000000s", "maxBackoff": "0.500000000s", "backoffMultiplier": 2.0,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    assert config["retryThrottling"] == {"maxTokens": 10, "tokenRatio": 0.1}


def test_no_retries_means_no_retry_policy():
    config = json.loads(RetryPolicy(retries=0).service_config("s", "m"))
    assert "retryPolicy" not in config["methodConfig"][0] and "retryThrottling" not in config


@pytest.mark.parametrize("settings", [dict(retries=5), dict(retries=-1), dict(initial_backoff_s=0.001), dict(multiplier=0.5)])
def test_policies_grpc_would_clamp_or_stall_on_are_refused(settings):
    with pytest.raises(ValueError):
        RetryPolicy(**settings)


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
