"""Analysing a recording: one Fuse call per window, several in flight, results in timeline order.

Why Fuse and not StreamFuse: a stream answers at a capped rate with whatever input has arrived by then,
so which audio and frame a result covers depends on timing. A Fuse call per window states exactly what
it covers (the 2 s of audio ending at t and the frame on screen at t), so every window gets its own
result, the same file always gives the same timeline, and calls run in parallel as fast as the service
can answer, without being paced by a clock.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import grpc
import numpy as np
from tqdm import tqdm

from capture_client.connection import Connection, wait_until_ready
from capture_client.media import MediaError, frames_at, probe, read_audio
from capture_client.modes import fusion_options, uses_audio, uses_video
from capture_client.outbox import jpeg
from capture_client.timeline import WindowResult
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, AUDIO_WINDOW_SECONDS

IN_FLIGHT = 4
CALL_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 10.0


class AnalysisError(RuntimeError):
    """The service failed on a window; the message says which and why."""


@dataclass(frozen=True)
class Recording:
    """What gets analysed: audio (int16, 16 kHz mono) and/or the video file to take frames from."""

    audio: np.ndarray | None
    video: Path | None
    duration_s: float

    @classmethod
    def open(cls, path: Path, audio_path: Path | None = None, mode: str = "both") -> "Recording":
        info = probe(path)
        video = path if info.has_video and uses_video(mode) else None
        audio = None
        if uses_audio(mode):
            if audio_path is not None:
                audio = read_audio(audio_path)
            elif info.has_audio:
                audio = read_audio(path)
        if audio is None and video is None:
            missing = {"both": "no video or audio track", "audio": "no audio track (give a sound file with --audio)",
                       "video": "no video track"}[mode]
            raise MediaError(f"{path} has nothing to analyse in --mode {mode}: {missing}")
        audio_s = len(audio) / AUDIO_SAMPLE_RATE_HZ if audio is not None else 0.0
        duration = max(info.duration_s if video is not None else 0.0, audio_s)
        if duration <= 0:
            raise MediaError(f"{path} is empty (duration 0 s)")
        return cls(audio, video, duration)


def window_times(duration_s: float, hop_s: float) -> list[float]:
    """Window end times: every hop_s seconds, and the very end so the last part is not left out."""
    count = math.ceil(duration_s / hop_s - 1e-9)
    return [round(min((i + 1) * hop_s, duration_s), 6) for i in range(count)]


def requests(recording: Recording, times: list[float], mode: str) -> Iterator[pb.FuseRequest]:
    frames = frames_at(recording.video, times) if recording.video is not None else (None for _ in times)
    for t, frame in zip(times, frames):
        request = pb.FuseRequest(options=fusion_options(mode))
        if recording.audio is not None:
            # The service classifies the last window of the audio it gets: sending more is waste.
            end = min(len(recording.audio), round(t * AUDIO_SAMPLE_RATE_HZ))
            window = recording.audio[max(0, end - round(AUDIO_WINDOW_SECONDS * AUDIO_SAMPLE_RATE_HZ)):end]
            if len(window):
                request.audio.CopyFrom(
                    pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, data=window.tobytes())
                )
        if frame is not None:
            request.image.encoded = jpeg(frame)
        yield request


def analyze(
    recording: Recording, connection: Connection, hop_s: float = 0.5, mode: str = "both", progress: bool = True,
) -> list[WindowResult]:
    times = window_times(recording.duration_s, hop_s)
    results: list[WindowResult] = []
    with connection.open_channel() as channel:
        wait_until_ready(channel, connection.target, timeout_s=READY_TIMEOUT_S)
        fuse = emotion_pb2_grpc.EmotionFusionStub(channel).Fuse
        pending: deque[tuple[float, grpc.Future]] = deque()
        with tqdm(total=len(times), unit="window", desc="analysing", disable=not progress, file=sys.stderr) as bar:
            for t, request in zip(times, requests(recording, times, mode)):
                pending.append((t, fuse.future(request, timeout=CALL_TIMEOUT_S, metadata=connection.metadata, wait_for_ready=True)))
                if len(pending) >= IN_FLIGHT:
                    results.append(_collect(*pending.popleft()))
                    bar.update()
            while pending:
                results.append(_collect(*pending.popleft()))
                bar.update()
    return results


def _collect(time_s: float, future: grpc.Future) -> WindowResult:
    try:
        return WindowResult.from_response(time_s, future.result())
    except grpc.RpcError as error:
        raise AnalysisError(
            f"the fusion service failed on the window ending at {time_s:.2f} s ({error.code().name}: {error.details()})"
        ) from None
