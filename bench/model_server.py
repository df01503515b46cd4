"""Predict through one model server of both models, as the local stack runs it: latency one call at a time,
then throughput and latency with many concurrent callers of one model, and the server's CPU time per Predict.

    .venv/bin/python -m bench.model_server                               # the development server as make run starts it
    .venv/bin/python -m bench.model_server --server-flag=--enable_batching \\
        --server-flag=--batching_parameters_file=/abs/path/batching.config --concurrency 8 32
    .venv/bin/python -m bench.model_server --server-root /tmp/old-checkout         # another commit's server

Inputs are random arrays of each model's contract shape (a model's cost does not depend on the values). The
server's CPU time is read from /proc before and after each phase, so it counts what the server itself spent,
whatever else runs on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from bench.machine import cpu_seconds, rss_mb  # noqa: E402
from bench.stats import summarise  # noqa: E402
from fusion_service.features.audio import N_FEATURES, N_FRAMES  # noqa: E402
from fusion_service.features.faces.crop import FACE_SIZE  # noqa: E402
from fusion_service.model_client import ModelClient, ModelContract  # noqa: E402
from scripts.local_stack import (  # noqa: E402
    MODEL_NAMES, ROOT, free_port, model_config_text, multi_model_server_command,
)

TIMEOUT_S = 30.0
START_TIMEOUT_S = 180.0
# The served models' inputs (fusion_service.analysis builds the same contracts; importing it would load the
# face detectors too, which a model-server benchmark does not need).
CONTRACTS = {
    "audio": ModelContract(name="audio", input_key="features", input_shape=(N_FRAMES, N_FEATURES)),
    "video": ModelContract(name="video", input_key="image", input_shape=(FACE_SIZE, FACE_SIZE, 1)),
}


@dataclass(frozen=True)
class Concurrent:
    """`callers` tasks calling Predict back to back over one channel, each with a batch of one."""

    model: str
    callers: int
    calls: int
    predicts_per_s: float
    latency_p50_ms: float
    latency_p99_ms: float
    server_cpu_ms_per_predict: float
    client_cpu_ms_per_predict: float  # this process: when it nears 1000 / predicts_per_s, the callers are the limit


def _batch(model: str, size: int, seed: int = 0) -> np.ndarray:
    shape = (size, *CONTRACTS[model].input_shape)
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


async def _sequential(client: ModelClient, batch: np.ndarray, runs: int, pid: int) -> dict:
    for _ in range(20):
        await client.predict(batch)
    durations = []
    cpu_before = cpu_seconds(pid)
    for _ in range(runs):
        start = time.perf_counter()
        await client.predict(batch)
        durations.append((time.perf_counter() - start) * 1000.0)
    cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000.0 / runs
    return {**summarise(durations).as_dict(), "server_cpu_ms_per_predict": round(cpu_ms, 3)}


async def _concurrent(client: ModelClient, model: str, callers: int, calls_each: int, pid: int) -> Concurrent:
    batch = _batch(model, 1)
    durations: list[float] = []

    async def caller() -> None:
        for _ in range(calls_each):
            start = time.perf_counter()
            await client.predict(batch)
            durations.append((time.perf_counter() - start) * 1000.0)

    await asyncio.gather(*(caller() for _ in range(callers)))  # warm-up: connections, batch sizes seen once
    durations.clear()
    cpu_before, client_cpu_before, started = cpu_seconds(pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed, cpu_s = time.perf_counter() - started, cpu_seconds(pid) - cpu_before
    client_cpu_s = time.process_time() - client_cpu_before
    summary = summarise(durations)
    return Concurrent(
        model=model, callers=callers, calls=len(durations), predicts_per_s=round(len(durations) / elapsed, 1),
        latency_p50_ms=round(summary.median, 3), latency_p99_ms=round(summary.p99, 3),
        server_cpu_ms_per_predict=round(cpu_s * 1000.0 / len(durations), 3),
        client_cpu_ms_per_predict=round(client_cpu_s * 1000.0 / len(durations), 3),
    )


async def _measure(target: str, server: subprocess.Popen, args: argparse.Namespace) -> dict:
    pid = server.pid
    clients = {name: ModelClient(target, CONTRACTS[name], TIMEOUT_S) for name in MODEL_NAMES}
    try:
        started = time.monotonic()
        await _wait_ready(clients.values(), server)
        ready_s = time.monotonic() - started
        sequential = {
            f"{name}_batch{size}": await _sequential(clients[name], _batch(name, size), args.runs, pid)
            for name in MODEL_NAMES for size in args.batch_sizes
        }
        concurrent = [
            asdict(await _concurrent(clients[args.model], args.model, callers, args.calls_per_caller, pid))
            for callers in args.concurrency
        ]
    finally:
        for client in clients.values():
            await client.close()
    return {
        "ready_s": round(ready_s, 2), "server_rss_mb": round(rss_mb(pid), 1),
        "sequential_ms": sequential, "concurrent": concurrent,
    }


async def _wait_ready(clients, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    for client in clients:
        while not (health := await client.check()).ready:
            if server.poll() is not None:
                raise RuntimeError(f"the model server exited with code {server.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"model server not ready after {START_TIMEOUT_S:.0f} s: {health.reason}")
            await asyncio.sleep(0.2)


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-model-server-") as directory:
        config = Path(directory) / "models.config"
        config.write_text(model_config_text(args.repository, MODEL_NAMES))
        port = free_port()
        command = [*multi_model_server_command(config, port, len(MODEL_NAMES)), *args.server_flag]
        log_path = Path(directory) / "model-server.log"
        with open(log_path, "wb") as log:
            env = dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
            server = subprocess.Popen(command, cwd=args.server_root, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                figures = asyncio.run(_measure(f"127.0.0.1:{port}", server, args))
            except Exception:
                print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            finally:
                server.terminate()
                server.wait(30)
    return {"command": command[1:], "load_average": [round(x, 2) for x in os.getloadavg()], **figures}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.model_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--runs", type=int, default=300, help="Predicts per sequential figure (default 300)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1], help="batch sizes of the sequential calls")
    parser.add_argument("--model", choices=MODEL_NAMES, default="video", help="model the concurrent callers call")
    parser.add_argument("--concurrency", type=int, nargs="*", default=[8, 32], help="numbers of concurrent callers")
    parser.add_argument("--calls-per-caller", type=int, default=40)
    parser.add_argument("--server-flag", action="append", default=[],
                        help="extra flag for the model server (repeat it), e.g. --server-flag=--enable_batching")
    parser.add_argument("--server-root", type=Path, default=ROOT,
                        help="directory the model server runs from (its model_server/ package): another commit's "
                        "checkout (git worktree) to compare with it")
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
