"""The fusion service's own account of a workload: its Prometheus metrics scraped before and after.

Stage figures come from the service's latency histograms, so they show where the time of a call goes
without instrumenting anything from outside. Note that a stage's time is measured around an `await`:
under load it includes waiting for a worker thread or the event loop, not only the stage's own work.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from bench.stats import histogram_quantile
from fusion_service.metrics import Stage

STAGES = tuple(stage.value for stage in Stage)

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Snapshot:
    """Every sample of one scrape: (sample name, sorted labels) -> value."""

    values: dict[SampleKey, float]

    @classmethod
    def parse(cls, text: str) -> "Snapshot":
        values = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return cls(values)

    def value(self, name: str, **labels: str) -> float:
        return self.values.get((name, tuple(sorted(labels.items()))), 0.0)

    def minus(self, earlier: "Snapshot") -> "Snapshot":
        """What happened between two scrapes (counters and histogram buckets only grow)."""
        return Snapshot({key: value - earlier.values.get(key, 0.0) for key, value in self.values.items()})


def scrape(port: int, timeout_s: float = 5.0) -> Snapshot:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout_s) as response:
        return Snapshot.parse(response.read().decode("utf-8"))


@dataclass(frozen=True)
class StageFigures:
    count: int
    mean_ms: float
    p50_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {"count": self.count, "mean_ms": self.mean_ms, "p50_ms": self.p50_ms, "p99_ms": self.p99_ms}


def stage_figures(delta: Snapshot, stage: str) -> StageFigures | None:
    """Count, mean and bucket-interpolated p50/p99 of one stage over a workload; None if it never ran.
    The percentiles are only as fine as the histogram's buckets (1, 2.5, 5, 7.5, 10, 15, 20, 30 ms ...)."""
    buckets = [
        (float(dict(labels)["le"]), value)
        for (name, labels), value in delta.values.items()
        if name == "fusion_stage_seconds_bucket" and dict(labels).get("stage") == stage
    ]
    count = delta.value("fusion_stage_seconds_count", stage=stage)
    if not buckets or count <= 0:
        return None
    return StageFigures(
        count=int(count),
        mean_ms=1000.0 * delta.value("fusion_stage_seconds_sum", stage=stage) / count,
        p50_ms=1000.0 * histogram_quantile(0.5, buckets),
        p99_ms=1000.0 * histogram_quantile(0.99, buckets),
    )


def workload_report(delta: Snapshot) -> dict:
    """Stage latencies and the service's counters over one workload, for results.json."""
    stages = {stage: figures.as_dict() for stage in STAGES if (figures := stage_figures(delta, stage)) is not None}
    results = {
        f"{dict(labels)['modality']}:{dict(labels)['status']}": int(value)
        for (name, labels), value in delta.values.items()
        if name == "fusion_modality_results_total" and value > 0
    }
    errors = {
        f"{dict(labels)['method']}:{dict(labels)['code']}": int(value)
        for (name, labels), value in delta.values.items()
        if name == "fusion_rpc_calls_total" and dict(labels)["code"] != "OK" and value > 0
    }
    return {
        "stages": stages,
        "modality_results": results,
        "rpc_errors": errors,
        "dropped_frames": int(delta.value("fusion_dropped_frames_total")),
        # Stream frames identical to the last one searched whole: not searched again (fusion_service/repeated_frames.py).
        "repeated_frames": {
            dict(labels)["reused"]: int(value)
            for (name, labels), value in delta.values.items()
            if name == "fusion_repeated_frames_total" and value > 0
        },
    }
