"""Run the development model server as a subprocess of a test (no TensorFlow in the test process needed)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from scripts.local_stack import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
ML_PYTHON = REPO_ROOT / ".venv-ml" / "bin" / "python"
START_TIMEOUT_S = 180


def ml_python() -> Path:
    """The TensorFlow environment's interpreter; fails the test (no skip) when it is missing."""
    if not ML_PYTHON.exists():
        pytest.fail(f"{ML_PYTHON} is missing: run `make test`, which creates the TensorFlow environment")
    return ML_PYTHON


class DevModelServer:
    """`python -m model_server FLAGS` on a free port; its combined output goes to log_path."""

    def __init__(self, flags: list[str], log_path: Path):
        self.port = free_port()
        self.target = f"localhost:{self.port}"
        self.log_path = log_path
        self._log_file = open(log_path, "wb")
        self.process = subprocess.Popen(
            [str(ml_python()), "-m", "model_server", f"--port={self.port}", *flags],
            cwd=REPO_ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        """Wait until the port answers (the server opens it once its models are loaded)."""
        deadline = time.monotonic() + START_TIMEOUT_S
        with grpc.insecure_channel(self.target) as channel:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"model server exited with {self.process.returncode}:\n{self.log()}")
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    return
                except grpc.FutureTimeoutError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"model server not serving after {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()
        return self.process.returncode

    def __enter__(self) -> DevModelServer:
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()
