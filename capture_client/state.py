"""What the views draw from, besides the frame and the result: connection, rates, drop counts.

Written by the stream and capture threads, read by the view loop, under one lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from capture_client.modes import uses_audio, uses_video
from capture_client.outbox import Outbox
from protos.emotion.v1 import emotion_pb2 as pb

log = logging.getLogger("capture_client")

# Results older than this no longer describe the person in front of the camera.
STALE_AFTER_S = 2.0

@dataclass(frozen=True)
class ViewState:
    """Everything about the session that the views show, besides the frame and the result."""

    target: str
    mode: str
    connection: str  # connecting | connected | reconnecting | failed
    notice: str  # the latest connection event, in words
    results_per_second: float = 0.0
    camera_fps: float = 0.0
    result_age_s: float | None = None  # None: no result yet
    frames_dropped_client: int = 0
    frames_dropped_service: int = 0
    audio_dropped_seconds: float = 0.0

    @property
    def stale(self) -> bool:
        return self.result_age_s is None or self.result_age_s > STALE_AFTER_S

    def dropped_input(self) -> list[str]:
        """What was dropped of the input the mode sends, in words: one part per modality, for either view."""
        parts = []
        if uses_video(self.mode):
            parts.append(
                f"frames dropped here: {self.frames_dropped_client}, skipped by the service: {self.frames_dropped_service}"
            )
        if uses_audio(self.mode):
            parts.append(f"audio dropped: {self.audio_dropped_seconds:.1f} s")
        return parts


class RateMeter:
    """Events per second over the last `span_s` seconds."""

    def __init__(self, span_s: float = 2.0):
        self._span_s = span_s
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)

    def rate(self, now: float) -> float:
        while self._times and self._times[0] < now - self._span_s:
            self._times.popleft()
        return len(self._times) / self._span_s


class LiveState:
    """Shared between the stream thread, the capture threads and the view loop."""

    def __init__(self, target: str, mode: str):
        self._lock = threading.Lock()
        self._target = target
        self._mode = mode
        self._connection = "connecting"
        self._notice = f"connecting to {target}"
        self._result: pb.FuseResponse | None = None
        self._result_time: float | None = None
        self._results = RateMeter()
        self._frames = RateMeter()
        self._service_drops_before = 0  # on streams that have ended
        self._service_drops_now = 0
        self.results_received = 0

    def set_connection(self, connection: str, notice: str, level: int = logging.INFO) -> None:
        log.log(level, notice)
        with self._lock:
            self._connection, self._notice = connection, notice

    def new_stream(self) -> None:
        with self._lock:
            self._service_drops_before += self._service_drops_now
            self._service_drops_now = 0

    def on_response(self, response: pb.StreamResponse) -> None:
        now = time.monotonic()
        with self._lock:
            self._result, self._result_time = response.result, now
            self._service_drops_now = response.frames_dropped
            self._results.tick(now)
            self.results_received += 1

    def on_frame(self) -> None:
        with self._lock:
            self._frames.tick(time.monotonic())

    @property
    def connection(self) -> str:
        return self._connection

    def snapshot(self, outbox: Outbox) -> tuple[pb.FuseResponse | None, ViewState]:
        now = time.monotonic()
        with self._lock:
            return self._result, ViewState(
                target=self._target,
                mode=self._mode,
                connection=self._connection,
                notice=self._notice,
                results_per_second=self._results.rate(now),
                camera_fps=self._frames.rate(now),
                result_age_s=None if self._result_time is None else now - self._result_time,
                frames_dropped_client=outbox.frames_dropped,
                frames_dropped_service=self._service_drops_before + self._service_drops_now,
                audio_dropped_seconds=outbox.audio_dropped_seconds,
            )
