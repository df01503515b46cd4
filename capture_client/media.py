"""Reading recordings: what a file holds (PyAV), its audio as 16 kHz mono PCM (PyAV), its frames (OpenCV)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import av
import cv2
import numpy as np

from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ


class MediaError(RuntimeError):
    """A file could not be read; the message names the file and what to do."""


@dataclass(frozen=True)
class MediaInfo:
    path: Path
    has_video: bool
    has_audio: bool
    duration_s: float


def probe(path: Path) -> MediaInfo:
    try:
        with av.open(str(path)) as container:
            duration = container.duration / av.time_base if container.duration else 0.0
            return MediaInfo(path, bool(container.streams.video), bool(container.streams.audio), duration)
    except (av.FFmpegError, OSError) as error:
        raise MediaError(f"cannot read {path}: {error}; give a video or audio file that ffmpeg can open") from None


def read_audio(path: Path, sample_rate: int = AUDIO_SAMPLE_RATE_HZ) -> np.ndarray:
    """The file's first audio track, mixed down to mono and resampled, as int16 samples."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(f"{path} has no audio track")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
            blocks = []
            for frame in container.decode(container.streams.audio[0]):
                blocks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
            blocks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    except (av.FFmpegError, OSError) as error:
        raise MediaError(f"cannot read audio from {path}: {error}") from None
    return np.concatenate(blocks).astype(np.int16) if blocks else np.zeros(0, dtype=np.int16)


def frames_at(path: Path, times: Iterable[float]) -> Iterator[np.ndarray | None]:
    """For each time (ascending), the BGR frame on screen just before it; None after the video's end.

    Frames in between are only grabbed, not converted, which keeps reading well faster than real time.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise MediaError(f"OpenCV cannot open the video in {path}")
    try:
        fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
        index = -1  # of the frame grabbed last
        frame = None
        ended = False
        for t in times:
            wanted = max(0, math.ceil(t * fps - 1e-6) - 1)  # frame i is on screen from i/fps to (i+1)/fps
            while not ended and index < wanted:
                ended = not capture.grab()
                index += 1
                frame = None
            if ended:
                yield None
                continue
            if frame is None:
                ok, frame = capture.retrieve()
                frame = frame if ok else None
            yield frame
    finally:
        capture.release()
