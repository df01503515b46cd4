"""A live session: capture threads fill the outbox, the stream client sends it, the state collects results."""

from __future__ import annotations

import numpy as np

from capture_client.capture import Camera, Microphone
from capture_client.connection import Backoff, Connection
from capture_client.modes import uses_audio, uses_video
from capture_client.outbox import Outbox
from capture_client.state import LiveState, ViewState
from capture_client.modes import stream_config
from capture_client.stream import StreamClient
from protos.emotion.v1 import emotion_pb2 as pb


class LiveSession:
    """Capture plus streaming for one mode; the view polls `snapshot()` and `latest_frame()`."""

    def __init__(
        self, connection: Connection, mode: str, camera_source: int | str | None = 0,
        microphone_device: int | str | None = None, camera_size: tuple[int | None, int | None] = (None, None),
        camera_fps: float | None = None, result_rate_hz: float = 0.0, backoff: Backoff | None = None,
    ):
        config = stream_config(mode, result_rate_hz)  # checks the mode
        self.outbox = Outbox()
        self.state = LiveState(connection.target, mode)
        self.camera = self.microphone = None
        if uses_video(mode):
            self.camera = Camera(camera_source, self._on_frame, *camera_size, fps=camera_fps)
        if uses_audio(mode):
            try:
                self.microphone = Microphone(microphone_device, self.outbox.put_audio)
            except Exception:
                if self.camera is not None:
                    self.camera.stop()  # releases the device
                raise
        self.client = StreamClient(connection, config, self.outbox, self.state, backoff)

    def _on_frame(self, sequence: int, frame: np.ndarray) -> None:
        self.state.on_frame()
        self.outbox.put_frame(sequence, frame)

    def start(self) -> None:
        self.client.start()
        for source in self._sources():
            source.start()

    def stop(self) -> None:
        for source in self._sources():
            source.stop()
        self.client.stop()

    def _sources(self) -> list:
        return [s for s in (self.camera, self.microphone) if s is not None]

    @property
    def sources_ended(self) -> bool:
        """True once every source has run out (only files do)."""
        return all(s.ended.is_set() for s in self._sources())

    @property
    def failed(self) -> str | None:
        return self.client.error

    def latest_frame(self) -> np.ndarray | None:
        return self.camera.latest() if self.camera else None

    def snapshot(self) -> tuple[pb.FuseResponse | None, ViewState]:
        return self.state.snapshot(self.outbox)
