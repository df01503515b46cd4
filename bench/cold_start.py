"""Cold start: from starting the processes (environments installed) to the fusion service's health SERVING,
with the moments each model server first reports its model AVAILABLE, to show where the time goes."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import grpc

from scripts.local_stack import LocalStack, free_port
from protos.tfserving import get_model_status_pb2, model_pb2, model_service_pb2_grpc

SERVING_TIMEOUT_S = 180.0
POLL_S = 0.1
# Every benchmark stream comes from 127.0.0.1, which the service counts as one client: lift its
# per-client stream limit (an environment variable, which a service without that limit ignores).
SERVICE_ENVIRONMENT = {"FUSION_MAX_STREAMS_PER_CLIENT": "0"}
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                  ("grpc.max_reconnect_backoff_ms", 100)]


class _ReadyWatch(threading.Thread):
    """Polls one model server until its model is AVAILABLE; records the moment (time.monotonic())."""

    def __init__(self, name: str, target: str, stop: threading.Event):
        super().__init__(daemon=True)
        self.model, self.target, self.stop = name, target, stop
        self.ready_at: float | None = None

    def run(self) -> None:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=self.model))
        available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        # The model server listens only once its model is loaded; gRPC's default reconnect backoff (1 s,
        # growing 1.6x) would report that moment seconds late.
        with grpc.insecure_channel(self.target, options=FAST_RECONNECT) as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            while not self.stop.is_set():
                try:
                    reply = stub.GetModelStatus(request, timeout=1.0)
                    if any(s.state == available for s in reply.model_version_status):
                        self.ready_at = time.monotonic()
                        return
                except grpc.RpcError:
                    pass
                time.sleep(POLL_S)


def start_stack(repository: Path, log_dir: Path) -> tuple[LocalStack, dict[str, float | None]]:
    """Start a stack on free loopback ports and wait until it is SERVING; returns it (running) and the
    seconds from start to each model's readiness and to SERVING."""
    os.environ.update(SERVICE_ENVIRONMENT)
    model_port = free_port()  # one model server for both models, as `make run` starts them
    stack = LocalStack(
        repository, audio_port=model_port, video_port=model_port, fusion_port=free_port(),
        metrics_port=free_port(), log_dir=log_dir,
    )
    stop = threading.Event()
    watches = [_ReadyWatch(name, stack.model_target(name), stop) for name in ("audio", "video")]
    begin = time.monotonic()
    stack.start()
    for watch in watches:
        watch.start()
    try:
        stack.wait_serving(timeout_s=SERVING_TIMEOUT_S)
        serving = time.monotonic() - begin
        for watch in watches:  # both models are up by now: each watch sees it at its next poll
            watch.join(timeout=5.0)
    except BaseException:
        stack.stop()
        raise
    finally:
        stop.set()
    timings = {f"{w.model}_model_ready_s": (w.ready_at - begin if w.ready_at else None) for w in watches}
    return stack, {"serving_s": serving, **timings}
