"""BackgroundLoop: the thread life shared by the camera, the sound-file playback and the stream client."""

from __future__ import annotations

import threading

import pytest

from capture_client.background import BackgroundLoop


class Ticker(BackgroundLoop):
    """Counts until stopped, or until `limit` ticks; `fail` raises instead."""

    def __init__(self, limit: int | None = None, fail: bool = False):
        super().__init__("ticker", join_timeout_s=5)
        self.ticks = 0
        self.interrupted = False
        self.started = threading.Event()
        self._limit = limit
        self._fail = fail

    def _run(self) -> None:
        self.started.set()
        if self._fail:
            raise RuntimeError("the device went away")
        while not self._stopping.wait(0.001):
            self.ticks += 1
            if self._limit is not None and self.ticks >= self._limit:
                return

    def _interrupt(self) -> None:
        self.interrupted = True


def test_stop_ends_the_loop_interrupts_it_and_waits_for_its_thread():
    ticker = Ticker()
    ticker.start()
    assert ticker.started.wait(5)
    ticker.stop()
    assert ticker.interrupted and ticker.ended.is_set() and not ticker._thread.is_alive()
    assert ticker._thread.name == "ticker" and ticker._thread.daemon


def test_a_loop_that_returns_by_itself_says_it_ended():
    ticker = Ticker(limit=3)
    ticker.start()
    assert ticker.ended.wait(5)
    assert ticker.ticks == 3


def test_a_loop_that_fails_still_says_it_ended(monkeypatch):
    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the thread's traceback is expected
    ticker = Ticker(fail=True)
    ticker.start()
    assert ticker.ended.wait(5)


def test_stop_before_start_is_harmless():
    ticker = Ticker()
    ticker.stop()
    assert ticker.interrupted and not ticker.ended.is_set()


def test_a_subclass_must_say_what_it_runs():
    with pytest.raises(TypeError, match="_run"):
        BackgroundLoop("nothing")  # type: ignore[abstract]
