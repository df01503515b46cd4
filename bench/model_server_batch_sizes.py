"""Cost of one Predict per batch size, in process (no gRPC), for each served model: what server-side batching
can save per item. Runs in the TensorFlow environment:

    .venv-ml/bin/python -m bench.model_server_batch_sizes [--batch-sizes 1 2 4 8 16] [--runs 200]

Three ways of running the model, alternated call by call so that all see the same machine load: the
development model server's Predict (model_server.loader, from the Predict request) on each of its runtimes,
LiteRT (the version's conversion; a version without one runs on TensorFlow here too) and a TensorFlow Session
callable, and the signature revived by tf.saved_model.load, called with a tensor (how it ran before). One
intra-op and one inter-op thread, as the local stack gives each model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.modules.setdefault("keras", None)  # as model_server/__main__.py: SavedModel signatures need no Keras

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from model_server import wire  # noqa: E402
from model_server.loader import (  # noqa: E402
    AUTO_RUNTIME, DEFAULT_SIGNATURE, TENSORFLOW_RUNTIME, SessionSettings, load_servable,
)
from model_server.source import find_versions  # noqa: E402
from protos.tfserving.tensors import fill_tensor_proto  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WARMUP_CALLS = 20


def _median_ms(calls: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median wall-clock ms of each call, the calls alternated run by run."""
    for call in calls.values():
        for _ in range(WARMUP_CALLS):
            call()
    durations: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            durations[name].append((time.perf_counter() - start) * 1000.0)
    return {name: statistics.median(values) for name, values in durations.items()}


def measure(repository: Path, name: str, batch_sizes: list[int], runs: int, session: SessionSettings) -> list[dict]:
    version = find_versions(str(repository / name))[-1]
    servables = {
        runtime: load_servable(name, version.number, version.path, enable_warmup=False, session=session,
                               runtime=runtime, litert_threads=1)
        for runtime in (AUTO_RUNTIME, TENSORFLOW_RUNTIME)
    }
    signature = servables[TENSORFLOW_RUNTIME].signature_defs[DEFAULT_SIGNATURE]
    (input_key, input_info), = signature.inputs.items()
    input_shape = [dim.size for dim in input_info.tensor_shape.dim][1:]
    revived = tf.saved_model.load(version.path).signatures[DEFAULT_SIGNATURE]
    rows = []
    for size in batch_sizes:
        batch = np.random.default_rng(size).normal(size=(size, *input_shape)).astype(np.float32)
        request = wire.PredictRequest(model_spec=wire.ModelSpec(name=name), output_filter=["probabilities"])
        fill_tensor_proto(request.inputs[input_key], batch, typed=False)
        medians = _median_ms({
            "predict_litert": lambda: servables[AUTO_RUNTIME].predict(request),
            "predict_tensorflow": lambda: servables[TENSORFLOW_RUNTIME].predict(request),
            "revived_signature": lambda: revived(**{input_key: tf.constant(batch)}),
        }, runs)
        rows.append({
            "model": name, "version": version.number, "batch_size": size,
            "litert_runtime": servables[AUTO_RUNTIME].runtime_name,
            **{f"{way}_ms": round(value, 3) for way, value in medians.items()},
            **{f"{way}_ms_per_item": round(value / size, 3) for way, value in medians.items()},
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.model_server_batch_sizes", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--models", nargs="+", default=["video", "audio"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--runs", type=int, default=200, help="calls per figure (default 200)")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    tf.config.threading.set_intra_op_parallelism_threads(1)  # the revived signature's eager thread pools
    tf.config.threading.set_inter_op_parallelism_threads(1)
    session = SessionSettings(intra_op=1, inter_op=1)
    rows = [
        row for name in args.models
        for row in measure(args.repository, name, args.batch_sizes, args.runs, session)
    ]
    results = {"load_average": [round(x, 2) for x in os.getloadavg()], "rows": rows}
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
