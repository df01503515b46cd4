"""The benchmark's arithmetic: medians, percentiles and quantiles of Prometheus histograms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.stats import histogram_quantile, summarise, time_calls


def test_summary_gives_the_median_and_99th_percentile_of_the_samples():
    samples = list(range(1, 101))  # 1..100
    summary = summarise(samples)
    assert summary.median == pytest.approx(50.5)
    assert summary.p99 == pytest.approx(np.percentile(samples, 99)) == pytest.approx(99.01)
    assert summary.runs == 100
    assert summary.as_dict() == {"median": summary.median, "p99": summary.p99, "runs": 100}


def test_summary_of_one_sample_is_that_sample():
    assert summarise([7.5]).median == summarise([7.5]).p99 == 7.5


def test_summary_of_nothing_is_refused():
    with pytest.raises(ValueError, match="non-empty"):
        summarise([])


def test_time_calls_counts_only_the_calls_after_the_warm_up():
    calls = []
    durations = time_calls(lambda: calls.append(1), runs=5, warmup=3)
    assert len(calls) == 8
    assert len(durations) == 5 and all(d >= 0 for d in durations)


# Buckets as Prometheus exposes them: cumulative counts per upper bound, +Inf holding the total.
BUCKETS = [(0.01, 0.0), (0.02, 50.0), (0.05, 90.0), (0.1, 100.0), (math.inf, 100.0)]


def test_histogram_quantile_interpolates_inside_the_bucket_holding_the_rank():
    assert histogram_quantile(0.5, BUCKETS) == pytest.approx(0.02)  # rank 50 is the top of (0.01, 0.02]
    assert histogram_quantile(0.25, BUCKETS) == pytest.approx(0.015)  # half way through (0.01, 0.02]
    assert histogram_quantile(0.99, BUCKETS) == pytest.approx(0.05 + 0.05 * 9 / 10)


def test_histogram_quantile_in_the_open_bucket_gives_the_highest_finite_bound():
    buckets = [(0.01, 10.0), (0.02, 20.0), (math.inf, 100.0)]
    assert histogram_quantile(0.99, buckets) == 0.02


def test_histogram_quantile_of_an_empty_histogram_is_nan():
    assert math.isnan(histogram_quantile(0.5, [(0.01, 0.0), (math.inf, 0.0)]))


def test_histogram_quantile_needs_the_total_bucket():
    with pytest.raises(ValueError, match="Inf"):
        histogram_quantile(0.5, [(0.01, 1.0)])
