"""The start/stop life of the client's threads (camera, sound-file playback, stream), written once."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class BackgroundLoop(ABC):
    """Runs `_run` on a named daemon thread: `_stopping` asks it to end, `ended` tells that it has."""

    def __init__(self, name: str, join_timeout_s: float = 5.0):
        self._stopping = threading.Event()
        self.ended = threading.Event()
        self._join_timeout_s = join_timeout_s
        self._thread = threading.Thread(target=self._run_then_end, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end, wake it from what it waits on, and give it a bounded time to finish."""
        self._stopping.set()
        self._interrupt()
        if self._thread.is_alive():
            self._thread.join(timeout=self._join_timeout_s)

    @abstractmethod
    def _run(self) -> None:
        """The loop; it returns soon after `_stopping` is set (wait on `_stopping` instead of sleeping)."""

    def _interrupt(self) -> None:
        """Wake a loop blocked on something other than `_stopping`, such as a call; nothing to do by default."""

    def _run_then_end(self) -> None:
        try:
            self._run()
        finally:
            self.ended.set()
