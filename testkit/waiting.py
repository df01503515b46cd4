"""Polling for something that happens in another thread or process, failing the test that waits in vain."""

from __future__ import annotations

import time
from typing import Callable

import pytest

WAIT_S = 180.0  # bound on waiting for something that should happen (the machine may be busy); never asserted


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S, interval_s: float = 0.1) -> None:
    """Poll until `condition()` holds; fail the test saying `what` did not happen in `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)
