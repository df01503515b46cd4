"""What waits to be sent: bounded, never blocking the capture threads; the oldest input goes first when full.

Audio is kept up to the service's window (older audio could not change the next result anyway) and
frames only a couple deep: the service analyses the newest frame, so a backlog would only add delay.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Iterator

import cv2
import numpy as np

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, AUDIO_WINDOW_SECONDS

FRAME_CAPACITY = 2
JPEG_QUALITY = 85


def jpeg(frame: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError(f"OpenCV could not encode a frame of shape {frame.shape} as JPEG")
    return encoded.tobytes()


class Outbox:
    def __init__(self, audio_capacity_s: float = AUDIO_WINDOW_SECONDS, frame_capacity: int = FRAME_CAPACITY):
        self._audio_limit = int(audio_capacity_s * AUDIO_SAMPLE_RATE_HZ) * 2  # bytes of int16
        self._audio: deque[bytes] = deque()
        self._audio_bytes = 0
        self._frames: deque[tuple[int, np.ndarray]] = deque(maxlen=frame_capacity)
        self._ready = threading.Condition()
        self.frames_dropped = 0
        self.audio_dropped_bytes = 0

    @property
    def audio_dropped_seconds(self) -> float:
        return self.audio_dropped_bytes / 2 / AUDIO_SAMPLE_RATE_HZ

    def put_audio(self, block: bytes) -> None:
        with self._ready:
            self._audio.append(block)
            self._audio_bytes += len(block)
            while self._audio_bytes > self._audio_limit:
                dropped = self._audio.popleft()
                self._audio_bytes -= len(dropped)
                self.audio_dropped_bytes += len(dropped)
            self._ready.notify()

    def put_frame(self, sequence: int, frame: np.ndarray) -> None:
        with self._ready:
            if len(self._frames) == self._frames.maxlen:
                self.frames_dropped += 1
            self._frames.append((sequence, frame))
            self._ready.notify()

    def take(self, timeout_s: float) -> tuple[bytes, tuple[int, np.ndarray] | None]:
        """All waiting audio (joined) and the oldest waiting frame; empty when nothing came within timeout_s."""
        with self._ready:
            if not self._audio and not self._frames:
                self._ready.wait(timeout_s)
            audio = b"".join(self._audio)
            self._audio.clear()
            self._audio_bytes = 0
            frame = self._frames.popleft() if self._frames else None
        return audio, frame

    def requests(self, config: pb.StreamConfig, done: threading.Event) -> Iterator[pb.StreamRequest]:
        """One stream's messages: the config, then captured input until `done` is set."""
        yield pb.StreamRequest(config=config)
        while not done.is_set():
            audio, frame = self.take(timeout_s=0.1)
            if audio:
                yield pb.StreamRequest(audio=pb.AudioChunk(data=audio))
            if frame is not None:
                sequence, image = frame
                yield pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=jpeg(image)), sequence=sequence))
