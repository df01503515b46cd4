"""Run the whole system on this machine: a model server per model, and the fusion service.

`make run` uses it; so do the integration tests and the benchmarks, on free ports. TF Serving's
`tensorflow_model_server` is used when it is on the PATH, else the development model server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
ML_PYTHON = ROOT / ".venv-ml" / "bin" / "python"
MODEL_NAMES = ("audio", "video")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def model_server_command(name: str, base_path: Path, port: int, poll_seconds: float = 2.0) -> list[str]:
    """The same flags work for TF Serving's binary and for the development model server."""
    flags = [
        f"--port={port}",
        f"--model_name={name}",
        f"--model_base_path={base_path.resolve()}",
        f"--file_system_poll_wait_seconds={poll_seconds:g}",
    ]
    binary = shutil.which("tensorflow_model_server")
    if binary:
        return [binary, "--rest_api_port=0", *flags]
    if not ML_PYTHON.exists():
        raise SystemExit(f"{ML_PYTHON} is missing: run `make run` (it creates the environment) or `make env-ml`.")
    return [str(ML_PYTHON), "-m", "model_server", *flags]


class LocalStack:
    """Starts, health-checks and stops the processes; usable as a context manager."""

    def __init__(
        self,
        repository: Path = ROOT / "model_repository",
        audio_port: int = 8500,
        video_port: int = 8501,
        fusion_port: int = 50051,
        metrics_port: int = 0,
        log_dir: Path | None = None,
        fusion_args: tuple[str, ...] = (),
    ):
        self.repository = repository
        self.ports = {"audio": audio_port, "video": video_port, "fusion": fusion_port}
        self.metrics_port = metrics_port
        self.log_dir = log_dir
        self.fusion_args = fusion_args
        self.processes: dict[str, subprocess.Popen] = {}
        self._logs: list[IO] = []

    @property
    def fusion_target(self) -> str:
        return f"127.0.0.1:{self.ports['fusion']}"

    def model_target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_dir / f"{name}.log", "wb")
            self._logs.append(output)
        env = dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT if output else None, env=env)
        self.processes[name] = process
        return process

    def start_model_server(self, name: str) -> None:
        self._spawn(f"{name}-model-server", model_server_command(name, self.repository / name, self.ports[name]))

    def start_fusion(self) -> None:
        self._spawn(
            "fusion",
            [
                sys.executable, "-m", "fusion_service",
                "--host=127.0.0.1",
                f"--port={self.ports['fusion']}",
                f"--audio-model-target={self.model_target('audio')}",
                f"--video-model-target={self.model_target('video')}",
                f"--metrics-port={self.metrics_port}",
                *self.fusion_args,
            ],
        )

    def start(self) -> None:
        for name in MODEL_NAMES:
            self.start_model_server(name)
        self.start_fusion()

    def wait_serving(self, timeout_s: float = 60.0) -> float:
        """Seconds until the fusion service's health is SERVING; raises if it does not get there."""
        start = time.monotonic()
        with grpc.insecure_channel(self.fusion_target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() - start < timeout_s:
                for name, process in self.processes.items():
                    if process.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {process.returncode}{self._log_hint(name)}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return time.monotonic() - start
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
        raise TimeoutError(f"fusion service not SERVING after {timeout_s:.0f} s{self._log_hint('fusion')}")

    def _log_hint(self, name: str) -> str:
        return f"; see {self.log_dir / (name + '.log')}" if self.log_dir else ""

    def stop(self, name: str | None = None, timeout_s: float = 15.0) -> None:
        names = [name] if name else list(self.processes)[::-1]
        for n in names:
            process = self.processes.pop(n, None)
            if process is None or process.poll() is not None:
                continue
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if name is None:
            for log in self._logs:
                log.close()
            self._logs.clear()

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Run both model servers and the fusion service on localhost.")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--audio-port", type=int, default=int(os.environ.get("AUDIO_MODEL_PORT", 8500)))
    parser.add_argument("--video-port", type=int, default=int(os.environ.get("VIDEO_MODEL_PORT", 8501)))
    parser.add_argument("--port", type=int, default=int(os.environ.get("FUSION_PORT", 50051)))
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("FUSION_METRICS_PORT", 9464)))
    args = parser.parse_args()

    stack = LocalStack(args.repository, args.audio_port, args.video_port, args.port, args.metrics_port)
    server = "tensorflow_model_server" if shutil.which("tensorflow_model_server") else "development model server"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        stack.start()
        took = stack.wait_serving(timeout_s=120)
        print(
            f"\nready in {took:.1f} s\n"
            f"  audio model  ({server})  grpc://{stack.model_target('audio')}\n"
            f"  video model  ({server})  grpc://{stack.model_target('video')}\n"
            f"  fusion service           grpc://{stack.fusion_target}"
            + (f"   metrics http://127.0.0.1:{args.metrics_port}/metrics" if args.metrics_port else "")
            + "\nCtrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        dead = [n for n, p in stack.processes.items() if p.poll() is not None]
        print(f"{', '.join(dead)} exited; stopping the rest", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
