"""The inputs every workload uses: a 640x480 webcam-like frame with one face (and the same at 1280x720), and speech,
made at run time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

import cv2
import numpy as np

from fusion_service.features.audio import SAMPLE_RATE, WINDOW_SAMPLES
from fusion_service.features.faces.names import DEFAULT_DETECTOR
from fusion_service.features.faces.pipeline import FacePipeline, make_detector
from testkit.media import face_photo, jpeg, pcm16, speech

FRAME_WIDTH, FRAME_HEIGHT = 640, 480
HD_WIDTH, HD_HEIGHT = 1280, 720
CHUNK_SECONDS = 0.1  # the streams' audio messages by default: as the capture client and the browser page send them
CAMERA_FRAMES = 15  # distinct frames a stream cycles through (one second at 15 fps)
CAMERA_NOISE_SD = 2.0  # grey levels: a webcam's sensor noise in good light


def webcam_frame(width: int = FRAME_WIDTH, height: int = FRAME_HEIGHT) -> np.ndarray:
    """BGR frame with one frontal face, as a laptop webcam shows a user half a metre away (640x480: the face
    about 130 px high). The 512x512 photograph is scaled to width x width and its top `height` rows kept."""
    photo = cv2.resize(face_photo(), (width, width), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(photo[:height])


def face_pipeline() -> FacePipeline:
    """The pipeline the benchmarked service runs: its detector follows FUSION_FACE_DETECTOR, as the service's does."""
    return FacePipeline(make_detector(os.environ.get("FUSION_FACE_DETECTOR", DEFAULT_DETECTOR)))


@dataclass
class Media:
    """Built once per run; workloads share it."""

    _chunks: dict[float, list[bytes]] = field(default_factory=dict, init=False, repr=False)

    @cached_property
    def frame(self) -> np.ndarray:
        return webcam_frame()

    @cached_property
    def frame_jpeg(self) -> bytes:
        return jpeg(self.frame)

    @cached_property
    def camera_frames_jpeg(self) -> list[bytes]:
        """What a stream sends: the frame with a camera's sensor noise, different in every frame of a second's
        cycle, so that no frame repeats the one before byte for byte (a webcam's never do; the service reuses the
        search of a repeated frame, which a stream of one JPEG would measure instead of the search)."""
        rng = np.random.default_rng(0)
        noisy = [np.clip(self.frame + rng.normal(0.0, CAMERA_NOISE_SD, self.frame.shape), 0, 255).astype(np.uint8)
                 for _ in range(CAMERA_FRAMES)]
        return [jpeg(frame) for frame in noisy]

    @cached_property
    def frame_decoded(self) -> np.ndarray:
        """The frame as the service sees it: the JPEG decoded (in colour, as decoding.decode_image does)."""
        return cv2.imdecode(np.frombuffer(self.frame_jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)

    @cached_property
    def hd_frame_decoded(self) -> np.ndarray:
        """The same scene at 1280x720, through JPEG as the service would see it."""
        return cv2.imdecode(np.frombuffer(jpeg(webcam_frame(HD_WIDTH, HD_HEIGHT)), dtype=np.uint8), cv2.IMREAD_COLOR)

    @cached_property
    def speech(self) -> np.ndarray:
        """About 5 s of espeak-ng speech at 16 kHz, float32."""
        return speech()

    @cached_property
    def speech_window(self) -> np.ndarray:
        """One 2-s window of speech: the features' unit of work and a Fuse call's audio."""
        return speech(WINDOW_SAMPLES / SAMPLE_RATE)

    @cached_property
    def speech_window_pcm16(self) -> bytes:
        return pcm16(self.speech_window)

    def speech_chunks_pcm16(self, seconds: float = CHUNK_SECONDS) -> list[bytes]:
        """The whole speech in PCM16 chunks of `seconds`, as a microphone delivers it; a live stream loops over them."""
        if seconds not in self._chunks:
            size = round(seconds * SAMPLE_RATE)
            usable = len(self.speech) // size * size
            self._chunks[seconds] = [pcm16(chunk) for chunk in self.speech[:usable].reshape(-1, size)]
        return self._chunks[seconds]
