"""Media for the client tests, made once per session: speech from espeak-ng, a talking-face video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from testkit.media import speech
from tests.client.videos import write_video


@pytest.fixture(scope="session")
def speech_samples() -> np.ndarray:
    return speech(6.0)


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("client-media")


@pytest.fixture(scope="session")
def talking_face_video(media_dir, speech_samples) -> Path:
    """6 s: the moving face with speech in its audio track."""
    return write_video(media_dir / "talking_face.mp4", 6.0, audio=speech_samples)


@pytest.fixture(scope="session")
def speech_wav(media_dir, speech_samples) -> Path:
    path = media_dir / "speech.wav"
    soundfile.write(path, speech_samples, 16000, subtype="PCM_16")
    return path
