"""Start-up of the local stack's one model server for both models: seconds from starting the process to both
models AVAILABLE, and the process's memory (RSS) then and after some Predicts; variants alternated run by run,
medians reported.

    .venv/bin/python -m bench.model_server_start --runs 5 \\
        --variant litert=. --variant tensorflow=.,--predict_runtime=tensorflow --variant before=/tmp/old-checkout

A variant is LABEL=SERVER_ROOT[,EXTRA_FLAG...]: the directory the server runs from (its model_server/ package;
another commit's checkout to compare with it) and flags added to the local stack's (scripts/local_stack.py).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from bench.machine import rss_mb
from bench.model_server import CONTRACTS
from fusion_service.tensors import to_tensor_proto
from protos.tfserving import (
    get_model_status_pb2, model_pb2, model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc,
)
from scripts.local_stack import MODEL_NAMES, ROOT, free_port, model_config_text, multi_model_server_command

START_TIMEOUT_S = 180.0
POLL_S = 0.05
PREDICTS = 50  # per model, before the second memory reading: interpreters and sessions planned
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 50)]


def _available(stub, name: str) -> bool:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=name))
    try:
        statuses = stub.GetModelStatus(request, timeout=1).model_version_status
    except grpc.RpcError:
        return False
    return any(status.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE for status in statuses)


def _predict_each(channel) -> None:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for name in MODEL_NAMES:
        contract = CONTRACTS[name]
        request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name))
        values = np.random.default_rng(0).normal(size=(1, *contract.input_shape)).astype(np.float32)
        request.inputs[contract.input_key].CopyFrom(to_tensor_proto(values))
        for _ in range(PREDICTS):
            stub.Predict(request, timeout=30)


def measure_once(root: Path, flags: list[str], repository: Path, directory: Path) -> dict:
    config = directory / "models.config"
    config.write_text(model_config_text(repository, MODEL_NAMES))
    port = free_port()
    command = [*multi_model_server_command(config, port, len(MODEL_NAMES)), *flags]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    with open(directory / "model-server.log", "wb") as log:
        started = time.monotonic()
        server = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}", options=FAST_RECONNECT) as channel:
                stub = model_service_pb2_grpc.ModelServiceStub(channel)
                while not all(_available(stub, name) for name in MODEL_NAMES):
                    if server.poll() is not None:
                        raise RuntimeError(f"the model server exited with {server.returncode}: see {log.name}")
                    if time.monotonic() - started > START_TIMEOUT_S:
                        raise TimeoutError(f"models not AVAILABLE after {START_TIMEOUT_S:.0f} s")
                    time.sleep(POLL_S)
                ready_s = time.monotonic() - started
                rss_ready = rss_mb(server.pid)
                _predict_each(channel)
                rss_serving = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    return {"ready_s": round(ready_s, 3), "rss_ready_mb": round(rss_ready, 1),
            "rss_after_predicts_mb": round(rss_serving, 1)}


def _variant(text: str) -> tuple[str, Path, list[str]]:
    label, _, rest = text.partition("=")
    root, *flags = rest.split(",")
    if not label or not root:
        raise argparse.ArgumentTypeError(f"expected LABEL=SERVER_ROOT[,FLAG...], got {text!r}")
    return label, Path(root).resolve(), flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.model_server_start", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", type=_variant, action="append", required=True,
                        help="LABEL=SERVER_ROOT[,EXTRA_FLAG...] (repeat it)")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--runs", type=int, default=5, help="starts per variant (default 5)")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    samples: dict[str, list[dict]] = {label: [] for label, _, _ in args.variant}
    with tempfile.TemporaryDirectory(prefix="bench-model-server-start-") as directory:
        for _ in range(args.runs):
            for label, root, flags in args.variant:
                samples[label].append(measure_once(root, flags, args.repository, Path(directory)))
    results = {
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "medians": {label: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                    for label, runs in samples.items()},
        "runs": samples,
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
