"""Fixtures of the integration tests: one pair of model servers for the tests that do not stop them,
and a fusion service process per test on top of them (so each test picks its own options)."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from scripts.local_stack import LocalStack, free_port
from testkit.waiting import WAIT_S


@pytest.fixture(scope="session")
def model_servers(tmp_path_factory) -> Iterator[LocalStack]:
    """Both development model servers, started once for the session; never stopped by a test."""
    stack = LocalStack(audio_port=free_port(), video_port=free_port(), log_dir=tmp_path_factory.mktemp("model-servers"))
    for name in ("audio", "video"):
        stack.start_model_server(name)
    yield stack
    stack.stop()


@pytest.fixture
def start_fusion(model_servers, tmp_path) -> Iterator[Callable[..., LocalStack]]:
    """Start a fusion service process with extra flags on the shared model servers; stopped after the test."""
    started: list[LocalStack] = []

    def start(*flags: str, wait: bool = True) -> LocalStack:
        stack = LocalStack(
            audio_port=model_servers.ports["audio"], video_port=model_servers.ports["video"],
            fusion_port=free_port(), log_dir=tmp_path / f"fusion-{len(started)}", fusion_args=flags,
        )
        started.append(stack)
        stack.start_fusion()
        if wait:
            stack.wait_serving(timeout_s=WAIT_S)
        return stack

    yield start
    for stack in started:
        stack.stop()
