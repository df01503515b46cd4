"""The rule that decides whether a number of live streams holds, on made-up stream logs."""

from __future__ import annotations

import pytest

from bench.live import ABORT_LAG_MS, WARMUP_SECONDS, Received, StreamLog, StreamPlan, clearly_failing, judge, stream_levels
from protos.emotion.v1 import emotion_pb2 as pb

PLAN = StreamPlan(fps=15.0, seconds=60.0, result_rate_hz=5.0)


def stream(lag_ms=lambda t: 40.0, rate_hz=5.0, seconds=60.0, status=pb.USED, start=100.0) -> StreamLog:
    """A stream whose results each include the newest frame due, received lag_ms(t) after it was due."""
    log = StreamLog(start=start)
    for sequence in range(1, int(seconds * PLAN.fps) + 1):
        due = start + (sequence - 1) / PLAN.fps
        log.frames[sequence] = (due, due + 0.001)
    for k in range(1, int(seconds * rate_hz)):
        at_s = k / rate_hz
        sequence = int(at_s * PLAN.fps)  # the newest frame due by then
        due = log.frames[sequence][0]
        log.results.append(Received(due + lag_ms(at_s) / 1000.0, sequence, status, status))
    return log


def test_streams_with_steady_lag_hold():
    verdict = judge([stream(), stream(start=100.1)], PLAN)
    assert verdict.held, verdict.reasons
    assert verdict.lag_first_ms == pytest.approx(40.0) and verdict.lag_last_ms == pytest.approx(40.0)
    assert verdict.lag_growth_ms == pytest.approx(0.0, abs=1e-6)
    assert verdict.min_results_per_s >= 4.5


def test_lag_that_grows_during_the_hold_fails():
    verdict = judge([stream(lag_ms=lambda t: 40.0 + 5.0 * t)], PLAN)
    assert not verdict.held
    assert verdict.lag_growth_ms > 50
    assert any("lag grew" in reason for reason in verdict.reasons)


def test_too_few_results_fail_even_without_lag():
    verdict = judge([stream(rate_hz=3.0)], PLAN)
    assert not verdict.held and any("results at" in reason for reason in verdict.reasons)


def test_a_model_server_that_did_not_answer_fails_the_level():
    verdict = judge([stream(status=pb.MODEL_UNAVAILABLE)], PLAN)
    assert not verdict.held and verdict.unavailable_results > 0


def test_a_failed_call_fails_the_level():
    failed = stream()
    failed.error = "UNAVAILABLE: connection reset"
    verdict = judge([stream(), failed], PLAN)
    assert not verdict.held and verdict.failed_calls == 1
    assert any("connection reset" in reason for reason in verdict.reasons)


def test_latency_counts_the_first_result_that_includes_each_frame():
    log = StreamLog(start=0.0)
    log.frames = {1: (0.0, 0.010), 2: (0.033, 0.040)}
    log.results = [
        Received(0.030, 1, pb.USED, pb.USED),
        Received(0.050, 1, pb.USED, pb.USED),  # audio-only result: frame 1 again, not counted twice
        Received(0.070, 2, pb.USED, pb.USED),
        Received(0.080, 0, pb.USED, pb.USED),  # no frame at all
    ]
    assert [round(x, 6) for x in log.latencies_ms()] == [20.0, 30.0]
    assert [(round(at, 3), round(lag, 6)) for at, lag in log.lags()] == [(0.0, 30.0), (0.033, 37.0)]


def test_a_stream_waiting_longer_than_the_abort_lag_is_clearly_failing():
    log = stream(seconds=10.0)
    last = log.results[-1].at
    assert not clearly_failing([log], now=last + 0.5)
    assert clearly_failing([log], now=last + ABORT_LAG_MS / 1000.0 + 0.1)
    assert not clearly_failing([StreamLog(start=0.0)], now=WARMUP_SECONDS / 2)  # still warming up


def test_levels_go_up_in_steps_to_the_maximum():
    assert stream_levels(16, 2) == [2, 4, 6, 8, 10, 12, 14, 16]
    assert stream_levels(5, 2) == [2, 4]
