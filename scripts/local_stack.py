"""Run the whole system on this machine: the model server(s) and the fusion service.

`make run` uses it, supervised (a part that exits is restarted, see scripts/supervisor.py); so do the
integration tests and the benchmarks, on free ports. Models that share a port are served by one model
server process (a --model_config_file listing them): one TensorFlow runtime instead of one per model. TF
Serving's `tensorflow_model_server` is used when it is on the PATH, else the development model server.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

import grpc
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scripts.supervisor import RestartPolicy, Supervisor

ROOT = Path(__file__).resolve().parent.parent
ML_PYTHON = ROOT / ".venv-ml" / "bin" / "python"
MODEL_NAMES = ("audio", "video")
MODEL_POLL_SECONDS = 2.0
log = logging.getLogger("local_stack")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model_server_binary() -> list[str]:
    binary = shutil.which("tensorflow_model_server")
    if binary:
        return [binary, "--rest_api_port=0"]
    if not ML_PYTHON.exists():
        raise SystemExit(f"{ML_PYTHON} is missing: run `make run` (it creates the environment) or `make env-ml`.")
    return [str(ML_PYTHON), "-m", "model_server"]


def model_server_command(name: str, base_path: Path, port: int, poll_seconds: float = MODEL_POLL_SECONDS) -> list[str]:
    """One model: the same flags work for TF Serving's binary and for the development model server."""
    return [
        *_model_server_binary(),
        f"--port={port}",
        f"--model_name={name}",
        f"--model_base_path={base_path.resolve()}",
        f"--file_system_poll_wait_seconds={poll_seconds:g}",
    ]


def multi_model_server_command(
    config_file: Path, port: int, models: int, poll_seconds: float = MODEL_POLL_SECONDS
) -> list[str]:
    """`models` models of a ModelServerConfig file in one process (see model_config_text)."""
    return [
        *_model_server_binary(),
        f"--port={port}",
        f"--model_config_file={config_file.resolve()}",
        f"--file_system_poll_wait_seconds={poll_seconds:g}",
        # A thread per model for running ops, as each had in a process of its own: the two Predicts of one
        # Fuse call run side by side instead of one after the other.
        f"--tensorflow_inter_op_parallelism={models}",
    ]


def model_config_text(repository: Path, names: tuple[str, ...]) -> str:
    """TF Serving's text-format ModelServerConfig serving the newest version of each named model."""
    # Imported here, not with the module: the TensorFlow environment's tests import this module too, and
    # the vendored protos would clash there with the official ones of the same names.
    from protos.tfserving import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    for name in names:
        entry = config.model_config_list.config.add(
            name=name, base_path=str((repository / name).resolve()), model_platform="tensorflow"
        )
        entry.model_version_policy.latest.num_versions = 1
    return text_format.MessageToString(config)


class LocalStack:
    """Starts, health-checks, restarts and stops the processes; usable as a context manager.

    A part is one process with a name ("model-server" for the models sharing a port, else
    "<model>-model-server"; "fusion"), started from a command it keeps, so it can be started again.
    """

    def __init__(
        self,
        repository: Path = ROOT / "model_repository",
        audio_port: int = 8500,
        video_port: int = 8500,
        fusion_port: int = 50051,
        metrics_port: int = 0,
        log_dir: Path | None = None,
        fusion_args: tuple[str, ...] = (),
        web_port: int | None = None,
    ):
        self.repository = repository
        self.ports = {"audio": audio_port, "video": video_port, "fusion": fusion_port}
        self.web_port = web_port  # the live page's gateway; None: not started
        self.metrics_port = metrics_port
        self.log_dir = log_dir
        self.fusion_args = fusion_args
        self.processes: dict[str, subprocess.Popen] = {}
        self._commands: dict[str, list[str]] = {}
        self._started_at: dict[str, float] = {}
        self._logs: list[IO] = []
        self._lock = threading.Lock()  # a supervisor thread restarts parts while others stop them
        self._config_dir: tempfile.TemporaryDirectory | None = None

    @property
    def fusion_target(self) -> str:
        return f"127.0.0.1:{self.ports['fusion']}"

    def model_target(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def models_served_with(self, name: str) -> tuple[str, ...]:
        """The models on the same port as `name`: one model server process serves them all."""
        return tuple(model for model in MODEL_NAMES if self.ports[model] == self.ports[name])

    def model_server_part(self, name: str) -> str:
        """The name of the part serving model `name`."""
        return "model-server" if len(self.models_served_with(name)) > 1 else f"{name}-model-server"

    @property
    def model_server_parts(self) -> list[str]:
        return list(dict.fromkeys(self.model_server_part(name) for name in MODEL_NAMES))

    def _spawn(self, name: str, command: list[str]) -> subprocess.Popen:
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = open(self.log_dir / f"{name}.log", "ab")  # a restarted part goes on in the same log
            self._logs.append(output)
        env = dict(os.environ, PYTHONUNBUFFERED="1", OPENBLAS_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT if output else None, env=env)
        with self._lock:
            self.processes[name] = process
            self._commands[name] = command
            self._started_at[name] = time.monotonic()
        return process

    def start_model_server(self, name: str) -> None:
        """Start the model server of model `name` (and of the models sharing its port)."""
        served = self.models_served_with(name)
        if len(served) == 1:
            command = model_server_command(name, self.repository / name, self.ports[name])
        else:
            command = multi_model_server_command(self._write_model_config(served), self.ports[name], len(served))
        self._spawn(self.model_server_part(name), command)

    def _write_model_config(self, names: tuple[str, ...]) -> Path:
        if self.log_dir is not None:
            directory = self.log_dir
        else:
            self._config_dir = self._config_dir or tempfile.TemporaryDirectory(prefix="local-stack-")
            directory = Path(self._config_dir.name)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "models.config"
        path.write_text(model_config_text(self.repository, names))
        return path

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

    def start_web(self) -> None:
        """The gateway of the live page, in front of the fusion service."""
        self._spawn("web", [sys.executable, "-m", "capture_client.web", f"--port={self.web_port}",
                            f"--target={self.fusion_target}"])

    def start(self) -> None:
        for name in dict.fromkeys(self.models_served_with(model)[0] for model in MODEL_NAMES):
            self.start_model_server(name)
        self.start_fusion()
        if self.web_port is not None:
            self.start_web()

    def running_parts(self) -> dict[str, tuple[int | None, float]]:
        """Each part not stopped on purpose: its exit code (None while it runs) and when it was started."""
        with self._lock:
            return {name: (process.poll(), self._started_at[name]) for name, process in self.processes.items()}

    def restart(self, name: str) -> int:
        """Start a part again with its command; returns the new process id."""
        with self._lock:
            command = self._commands[name]
        return self._spawn(name, command).pid

    def wait_serving(self, timeout_s: float = 60.0, fail_on_exit: bool = True) -> float:
        """Seconds until the fusion service's health is SERVING; raises if it does not get there (or, with
        fail_on_exit, as soon as a part exits)."""
        start = time.monotonic()
        with grpc.insecure_channel(self.fusion_target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() - start < timeout_s:
                for name, (exit_code, _) in self.running_parts().items():
                    if fail_on_exit and exit_code is not None:
                        raise RuntimeError(f"{name} exited with code {exit_code}{self._log_hint(name)}")
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
        """Stop one part (it is not restarted), or all of them, the fusion service first."""
        with self._lock:
            names = [name] if name else list(self.processes)[::-1]
            stopping = [self.processes.pop(n) for n in names if n in self.processes]
        for process in stopping:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in stopping:
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if name is None:
            for output in self._logs:
                output.close()
            self._logs.clear()
            if self._config_dir is not None:
                self._config_dir.cleanup()
                self._config_dir = None

    def __enter__(self) -> "LocalStack":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _announce_when_serving(stack: LocalStack, server: str) -> None:
    try:
        took = stack.wait_serving(timeout_s=120, fail_on_exit=False)
    except TimeoutError as error:
        log.error("%s; the stack keeps running (and restarting what exits): see the output above", error)
        return
    model_lines = "".join(
        f"  {' and '.join(stack.models_served_with(name)) + ' model':<22} ({server})  grpc://{stack.model_target(name)}\n"
        for name in dict.fromkeys(stack.models_served_with(model)[0] for model in MODEL_NAMES)
    )
    metrics = f"   metrics http://127.0.0.1:{stack.metrics_port}/metrics" if stack.metrics_port else ""
    page = (f"  {'live page':<22}{' ' * (len(server) + 4)}http://localhost:{stack.web_port}/   (open it in a browser)\n"
            if stack.web_port is not None else "")
    print(
        f"\nready in {took:.1f} s\n{model_lines}"
        f"  {'fusion service':<22}{' ' * (len(server) + 4)}grpc://{stack.fusion_target}{metrics}\n{page}"
        "A part that exits is restarted. Ctrl-C stops everything.\n",
        flush=True,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Run the model server(s) and the fusion service on localhost, restarting any part that exits."
    )
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--model-port", type=int, default=int(os.environ.get("MODEL_PORT", 8500)),
                        help="port of the one model server serving both models")
    parser.add_argument("--audio-port", type=int, default=os.environ.get("AUDIO_MODEL_PORT"),
                        help="port of the audio model (default: --model-port); a port of its own starts a model "
                        "server of its own")
    parser.add_argument("--video-port", type=int, default=os.environ.get("VIDEO_MODEL_PORT"),
                        help="port of the video model (default: --model-port)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FUSION_PORT", 50051)))
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("FUSION_METRICS_PORT", 9464)))
    parser.add_argument("--web-port", type=int, default=int(os.environ.get("WEB_PORT", 8080)),
                        help="port of the live page's gateway (0: do not start it)")
    parser.add_argument("--restart-delay", type=float, default=RestartPolicy().initial_delay_s, metavar="SECONDS",
                        help="seconds before a part that exited is restarted (default %(default)s; doubled while it "
                        "keeps exiting soon after starting)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    stack = LocalStack(
        args.repository,
        audio_port=args.audio_port or args.model_port,
        video_port=args.video_port or args.model_port,
        fusion_port=args.port,
        metrics_port=args.metrics_port,
        web_port=args.web_port or None,
    )
    server = "tensorflow_model_server" if shutil.which("tensorflow_model_server") else "development model server"
    stopped = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        threading.Thread(target=_announce_when_serving, args=(stack, server), daemon=True).start()
        # Supervision runs here, in the main thread, so that it has stopped before the parts are.
        Supervisor(stack, RestartPolicy(initial_delay_s=args.restart_delay)).run(stopped)
    finally:
        log.info("stopping everything")
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
