"""Stage figures read from the service's metrics as Prometheus exposes them."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from bench.prometheus import Snapshot, stage_figures, workload_report


def exposition(durations: dict[str, list[float]], used: int = 0, dropped: int = 0, repeated: int = 0) -> str:
    """Metrics text of a registry holding the service's metric names."""
    registry = CollectorRegistry()
    stages = Histogram("fusion_stage_seconds", "stage", ["stage"], buckets=(0.005, 0.01, 0.02), registry=registry)
    results = Counter("fusion_modality_results", "results", ["modality", "status"], registry=registry)
    dropped_frames = Counter("fusion_dropped_frames", "dropped", registry=registry)
    repeated_frames = Counter("fusion_repeated_frames", "repeated", ["reused"], registry=registry)
    for stage, values in durations.items():
        for value in values:
            stages.labels(stage).observe(value)
    if used:
        results.labels("video", "USED").inc(used)
    dropped_frames.inc(dropped)
    if repeated:
        repeated_frames.labels("outcome").inc(repeated)
    return generate_latest(registry).decode()


def test_a_stage_is_summarised_over_the_observations_between_two_scrapes():
    before = Snapshot.parse(exposition({"face": [0.001] * 10}))
    after = Snapshot.parse(exposition({"face": [0.001] * 10 + [0.015] * 4}))
    figures = stage_figures(after.minus(before), "face")
    assert figures.count == 4
    assert figures.mean_ms == pytest.approx(15.0)
    assert 10.0 <= figures.p50_ms <= 20.0 and 10.0 <= figures.p99_ms <= 20.0


def test_a_stage_that_never_ran_has_no_figures():
    snapshot = Snapshot.parse(exposition({"face": [0.001]}))
    assert stage_figures(snapshot.minus(snapshot), "face") is None
    assert stage_figures(snapshot, "features") is None


def test_workload_report_lists_stages_results_and_dropped_and_repeated_frames():
    report = workload_report(Snapshot.parse(exposition({"total": [0.004, 0.006]}, used=2, dropped=3, repeated=4)))
    assert set(report["stages"]) == {"total"} and report["stages"]["total"]["count"] == 2
    assert report["modality_results"] == {"video:USED": 2}
    assert report["dropped_frames"] == 3
    assert report["repeated_frames"] == {"outcome": 4}
    assert report["rpc_errors"] == {}


def test_workload_report_lists_calls_that_did_not_end_ok():
    registry = CollectorRegistry()
    calls = Counter("fusion_rpc_calls", "calls", ["service", "method", "code"], registry=registry)
    calls.labels("emotion.v1.EmotionFusion", "Fuse", "OK").inc(40)
    calls.labels("emotion.v1.EmotionFusion", "Fuse", "DEADLINE_EXCEEDED").inc(2)
    report = workload_report(Snapshot.parse(generate_latest(registry).decode()))
    assert report["rpc_errors"] == {"Fuse:DEADLINE_EXCEEDED": 2}
