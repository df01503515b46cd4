"""Camera and microphone capture on their own threads, so that nothing here ever waits on the network.

Seams for machines without devices: the camera source may be a video file (played at its own frame
rate, as a camera would deliver it) and the microphone a sound file (played in real time through the
same callback that sounddevice calls).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from capture_client.background import BackgroundLoop
from capture_client.media import read_audio
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ

FrameHandler = Callable[[int, np.ndarray], None]  # (sequence from 1, BGR frame)
AudioHandler = Callable[[bytes], None]  # int16 mono PCM at AUDIO_SAMPLE_RATE_HZ


class CaptureError(RuntimeError):
    """A device or file could not be opened; the message says what to try instead."""


def parse_source(value: str) -> int | str:
    """'0' is a device index; anything else a name, path or URL."""
    return int(value) if value.isdigit() else value


class Camera(BackgroundLoop):
    """Frames from a webcam (index), a video file or a stream URL; `latest()` is for the view."""

    def __init__(
        self, source: int | str, on_frame: FrameHandler,
        width: int | None = None, height: int | None = None, fps: float | None = None,
    ):
        super().__init__("camera")
        self.source = source
        self._capture = cv2.VideoCapture(source)
        if not self._capture.isOpened():
            raise CaptureError(
                f"could not open camera {source!r}: see `emotion-capture --list-devices` for the cameras found, "
                "or give a video file path or stream URL"
            )
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height), (cv2.CAP_PROP_FPS, fps)):
            if value:
                self._capture.set(prop, value)
        # A device or stream delivers frames at its own pace; a file must be slowed down to it.
        self._paced = isinstance(source, str) and Path(source).is_file()
        self._interval_s = 1.0 / (self._capture.get(cv2.CAP_PROP_FPS) or 30.0)
        self._on_frame = on_frame
        self._latest: np.ndarray | None = None

    def stop(self) -> None:
        super().stop()
        self._capture.release()

    def latest(self) -> np.ndarray | None:
        return self._latest

    def _run(self) -> None:
        sequence = 0
        due = time.monotonic()
        while not self._stopping.is_set():
            ok, frame = self._capture.read()
            if not ok:
                break
            sequence += 1
            self._latest = frame
            self._on_frame(sequence, frame)
            if self._paced:
                due += self._interval_s
                self._stopping.wait(max(0.0, due - time.monotonic()))


class SoundFilePlayback(BackgroundLoop):
    """Plays a sound file into a sounddevice-style input callback in real time, as a microphone would."""

    def __init__(self, *, samplerate: int, blocksize: int, device: str, callback: Callable, **_ignored):
        super().__init__("sound-file")
        self._samples = read_audio(Path(device), samplerate)
        self._block = blocksize
        self._interval_s = blocksize / samplerate
        self._callback = callback
        self._no_overflow = _sounddevice().CallbackFlags()

    def close(self) -> None:
        self.stop()

    def _run(self) -> None:
        due = time.monotonic()
        for start in range(0, len(self._samples), self._block):
            due += self._interval_s
            if self._stopping.wait(max(0.0, due - time.monotonic())):
                break
            block = self._samples[start:start + self._block]
            self._callback(block.tobytes(), len(block), None, self._no_overflow)


def _sounddevice():
    try:
        import sounddevice
    except OSError as error:
        raise CaptureError(f"the PortAudio library is missing ({error}): install it, e.g. `apt-get install libportaudio2`") from None
    return sounddevice


class Microphone:
    """16 kHz mono int16 blocks from a sounddevice input (or a sound file) handed to `on_audio`."""

    def __init__(self, device: int | str | None, on_audio: AudioHandler, block_seconds: float = 0.1):
        sounddevice = _sounddevice()
        self.device = device
        self.overflows = 0
        self._on_audio = on_audio
        is_file = isinstance(device, str) and Path(device).is_file()
        stream_class = SoundFilePlayback if is_file else sounddevice.RawInputStream
        try:
            self._stream = stream_class(
                samplerate=AUDIO_SAMPLE_RATE_HZ, channels=1, dtype="int16",
                blocksize=round(block_seconds * AUDIO_SAMPLE_RATE_HZ), device=device, callback=self._on_block,
            )
        except (sounddevice.PortAudioError, ValueError) as error:
            found = "none found" if not list_microphones() else "see `emotion-capture --list-devices`"
            raise CaptureError(
                f"could not open microphone {device if device is not None else '(default)'} ({error}); microphones: {found}. "
                "Pick one with --microphone, give a sound file, or use --mode video"
            ) from None
        # A sound file ends; a microphone does not.
        self.ended: threading.Event = getattr(self._stream, "ended", threading.Event())

    def start(self) -> None:
        self._stream.start()

    def stop(self) -> None:
        self._stream.stop()
        self._stream.close()

    def _on_block(self, indata, frames: int, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self._on_audio(bytes(indata))


def list_cameras(max_index: int = 8) -> list[str]:
    """Cameras that open at indexes 0..max_index-1, with the resolution they deliver."""
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)  # silence 'cannot open index N'
    found = []
    for index in range(max_index):
        capture = cv2.VideoCapture(index)
        if capture.isOpened():
            width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fps = capture.get(cv2.CAP_PROP_FPS)
            found.append(f"{index}: {width}x{height}" + (f" at {fps:g} fps" if fps else ""))
        capture.release()
    return found


def list_microphones() -> list[str]:
    sounddevice = _sounddevice()
    host_apis = sounddevice.query_hostapis()
    return [
        f"{index}: {device['name']} ({host_apis[device['hostapi']]['name']}, {device['max_input_channels']} channels, "
        f"default {device['default_samplerate']:g} Hz)"
        for index, device in enumerate(sounddevice.query_devices())
        if device["max_input_channels"] > 0
    ]
