"""Summaries of repeated measurements: medians and tail percentiles, from raw samples or from Prometheus buckets."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Summary:
    """Median and 99th percentile of `runs` repeated measurements (same unit as the samples)."""

    median: float
    p99: float
    runs: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarise(samples: Sequence[float]) -> Summary:
    """Median and p99 (linear interpolation between order statistics, numpy's default) of the samples."""
    values = np.asarray(samples, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"need a non-empty list of measurements, got shape {values.shape}")
    return Summary(median=float(np.median(values)), p99=float(np.percentile(values, 99)), runs=int(values.size))


def time_calls(function: Callable[[], object], runs: int, warmup: int) -> list[float]:
    """Wall-clock milliseconds of `runs` calls of function, after `warmup` calls that are not counted
    (first calls pay for lazy initialisation and cold caches)."""
    for _ in range(warmup):
        function()
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        durations.append((time.perf_counter() - start) * 1000.0)
    return durations


def histogram_quantile(quantile: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The quantile of a cumulative histogram [(upper bound, count <= bound), ...], as Prometheus'
    histogram_quantile(): linear interpolation inside the bucket holding the rank; a rank in the +Inf
    bucket gives the highest finite bound. NaN when the histogram is empty."""
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be within 0..1, got {quantile}")
    ordered = sorted(buckets)
    if not ordered or not math.isinf(ordered[-1][0]):
        raise ValueError("a cumulative histogram needs its +Inf bucket (the total count)")
    total = ordered[-1][1]
    if total <= 0:
        return math.nan
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in ordered[:-1]:
        if count >= rank:
            if count == lower_count:
                return upper_bound
            return lower_bound + (upper_bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper_bound, count
    return lower_bound  # the rank lies in the +Inf bucket
