"""Test videos made at test time: the astronaut photo moving around, optionally with a speech track."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from testkit.media import face_photo, no_face_photo, pcm16, small_face_frame

FRAME_SIZE = (640, 480)
FACE_SIDE = 400  # the face in it is about 120 px: the service looks for faces of at least a fifth of the frame


def face_position(t: float) -> tuple[int, int]:
    """Top-left corner of the photo at time t: it drifts left and right, and up and down a little."""
    width, height = FRAME_SIZE
    x = (width - FACE_SIDE) / 2 + (width - FACE_SIDE) / 2 * math.sin(2 * math.pi * t / 4)
    y = (height - FACE_SIDE) / 2 * (1 + math.sin(2 * math.pi * t / 3))
    return round(x), round(y)


@functools.cache
def _photo() -> np.ndarray:
    """The astronaut's head and shoulders, cut from the 512x512 photograph."""
    return cv2.resize(face_photo()[0:360, 45:405], (FACE_SIDE, FACE_SIDE), interpolation=cv2.INTER_AREA)


def moving_face_frame(t: float) -> np.ndarray:
    width, height = FRAME_SIZE
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = np.linspace(90, 160, width, dtype=np.uint8)[None, :, None]
    x, y = face_position(t)
    frame[y:y + FACE_SIDE, x:x + FACE_SIDE] = _photo()
    return frame


def distant_face_frame(t: float) -> np.ndarray:
    """640x480 over a face-free photograph: the astronaut sitting back, her face about 70 px wide, drifting
    slowly; out of view for DISTANT_FACE_AWAY_S."""
    if DISTANT_FACE_AWAY_S[0] <= t < DISTANT_FACE_AWAY_S[1]:
        return cv2.resize(no_face_photo(), FRAME_SIZE, interpolation=cv2.INTER_AREA)
    x = 150 + 300 * (0.5 + 0.5 * math.sin(2 * math.pi * t / 12))
    y = 120 + 40 * math.sin(2 * math.pi * t / 5)
    return small_face_frame(DISTANT_FACE_WIDTH, FRAME_SIZE, (round(x), round(y)))[0]


DISTANT_FACE_WIDTH = 70
DISTANT_FACE_AWAY_S = (6.0, 10.0)


def write_video(
    path: Path, seconds: float, fps: int = 15, audio: np.ndarray | None = None,
    frame_at: Callable[[float], np.ndarray] = moving_face_frame,
) -> Path:
    """An H.264 MP4 of frame_at(t) (the moving face by default), with `audio` (float32, 16 kHz mono) as an AAC
    track if given."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        video.width, video.height = FRAME_SIZE
        video.pix_fmt = "yuv420p"
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=16000, layout="mono")
        for index in range(round(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(frame_at(index / fps), format="bgr24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            samples = np.frombuffer(pcm16(audio), dtype=np.int16)
            size = sound.codec_context.frame_size or 1024
            for start in range(0, len(samples), size):
                block = samples[start:start + size]
                frame = av.AudioFrame.from_ndarray(block.reshape(1, -1), format="s16", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = 16000, start, Fraction(1, 16000)
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return path
