"""Fixtures shared across test folders."""

from __future__ import annotations

from typing import Iterator

import pytest
from hypothesis import settings

from scripts.local_stack import LocalStack, free_port

# Property tests assert behaviour, not speed: Hypothesis's default 200 ms deadline per example fails them on a
# loaded machine (speed targets live in `make bench`).
settings.register_profile("no_deadline", deadline=None)
settings.load_profile("no_deadline")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[LocalStack]:
    """The whole system on free loopback ports with the committed models, SERVING; one per test module."""
    logs = tmp_path_factory.mktemp("logs")
    with LocalStack(audio_port=free_port(), video_port=free_port(), fusion_port=free_port(), log_dir=logs) as running:
        running.wait_serving(timeout_s=120)
        yield running
