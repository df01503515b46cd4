"""Prometheus metrics of the fusion service (served on --metrics-port at /metrics)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from enum import Enum
from typing import Iterator

from prometheus_client import Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class Stage(str, Enum):
    """The processing stages timed in `fusion_stage_seconds`; the bench reads its figures by these names."""

    DECODE = "decode"
    FEATURES = "features"
    FACE = "face"
    PREDICT_AUDIO = "predict_audio"
    PREDICT_VIDEO = "predict_video"
    FUSION = "fusion"
    TOTAL = "total"


STAGE_SECONDS = Histogram(
    "fusion_stage_seconds",
    f"Time spent per processing stage ({', '.join(stage.value for stage in Stage)}).",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
MODALITY_RESULTS = Counter(
    "fusion_modality_results_total", "Analyses by modality and the status they ended with.", ["modality", "status"]
)
ACTIVE_STREAMS = Gauge("fusion_active_streams", "Live streams currently open.")
DROPPED_FRAMES = Counter("fusion_dropped_frames_total", "Frames replaced by a newer one before they were analysed.")
REPEATED_FRAMES = Counter(
    "fusion_repeated_frames_total",
    "Stream frames identical to the last one searched whole, not decoded or searched again; reused: the video "
    "model's answer too (outcome) or only the faces, asked again (faces).",
    ["reused"],
)
RPC_CALLS = Counter(
    "fusion_rpc_calls_total", "Finished calls by service, method and final status code (OK included).",
    ["service", "method", "code"],
)
MODEL_READY = Gauge("fusion_model_ready", "1 when the model server answers with the expected model.", ["model"])
MODEL_BREAKER_OPEN = Gauge(
    "fusion_model_breaker_open", "1 while a failing model server is skipped (circuit breaker open).", ["model"]
)


@contextmanager
def timed(stage: Stage) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_SECONDS.labels(stage.value).observe(time.perf_counter() - start)
