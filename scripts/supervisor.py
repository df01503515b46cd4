"""Keeps the local stack's parts running: a part that exits is started again after a back-off, and the
others keep running meanwhile, as Kubernetes restarts a crashed container (deploy/) and the fusion
service rides it out.

The back-off doubles each time a part exits soon after it was (re)started, up to a cap, so a part that
cannot start does not take the machine's CPU; a part that ran for `stable_after_s` starts again at the
initial delay, so one crash after hours of work is not punished for earlier ones.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger("local_stack")


@dataclass(frozen=True)
class RestartPolicy:
    initial_delay_s: float = 0.5
    max_delay_s: float = 10.0
    stable_after_s: float = 30.0


class SupervisedStack(Protocol):
    """What the supervisor needs of a stack (scripts.local_stack.LocalStack)."""

    def running_parts(self) -> dict[str, tuple[int | None, float]]:
        """Each part started and not stopped on purpose: its exit code (None while it runs) and the
        time.monotonic() it was started at."""

    def restart(self, name: str) -> int:
        """Start the part again with the command it was started with; returns the new process id."""


@dataclass
class _PartState:
    delay_s: float
    restart_at: float | None = None  # when an exited part is due to start again


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


class Supervisor:
    """Watches the parts of a stack and restarts those that exit; `check()` is one look, `run()` loops."""

    def __init__(
        self, stack: SupervisedStack, policy: RestartPolicy = RestartPolicy(), interval_s: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._stack = stack
        self._policy = policy
        self._interval_s = interval_s
        self._clock = clock  # the stack's start times are on this clock
        self._states: dict[str, _PartState] = {}
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        now = self._clock()
        for name, (exit_code, started_at) in self._stack.running_parts().items():
            state = self._states.setdefault(name, _PartState(self._policy.initial_delay_s))
            if exit_code is None:
                continue
            if state.restart_at is None:
                self._schedule(name, state, exit_code, now - started_at, now)
            elif now >= state.restart_at:
                state.restart_at = None
                pid = self._stack.restart(name)
                log.warning("%s restarted (pid %d)", name, pid)

    def _schedule(self, name: str, state: _PartState, exit_code: int, ran_s: float, now: float) -> None:
        if ran_s >= self._policy.stable_after_s:
            state.delay_s = self._policy.initial_delay_s
        delay = state.delay_s
        state.restart_at = now + delay
        capped = " (the longest back-off: it keeps exiting soon after starting)" if delay >= self._policy.max_delay_s else ""
        log.warning(
            "%s exited with %s after %.1f s; restarting it in %.1f s%s",
            name, describe_exit(exit_code), ran_s, delay, capped,
        )
        state.delay_s = min(2.0 * delay, self._policy.max_delay_s)

    def run(self, stopped: threading.Event | None = None) -> None:
        """Check until `stopped` (or stop()) is set."""
        stopped = stopped or self._stopped
        while not stopped.wait(self._interval_s) and not self._stopped.is_set():
            self.check()

    def start(self) -> None:
        """Supervise from a background thread, until stop()."""
        self._thread = threading.Thread(target=self.run, name="supervisor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """No part is restarted after this returns."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
