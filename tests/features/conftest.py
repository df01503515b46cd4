"""Test audio made at test time: espeak-ng speech (testkit/media.py) and steady background noises."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from fusion_service.features.audio import SAMPLE_RATE, AudioFeatureExtractor
from fusion_service.features.speech import SpeechDetector
from testkit.media import speech


def at_level(samples: np.ndarray, level_dbfs: float) -> np.ndarray:
    """Scale to an RMS level in dB relative to full scale (RMS 1.0 = 0 dBFS)."""
    rms = np.sqrt(np.mean(np.square(samples, dtype=np.float64)))
    return (samples * (10 ** (level_dbfs / 20) / rms)).astype(np.float32)


def noise(kind: str, level_dbfs: float, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Steady background noise at 16 kHz: white, pink (1/f), brown (1/f^2, like a fan or rumble) or mains hum
    (50 Hz with its 2nd and 3rd harmonics)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    if kind == "hum":
        t = np.arange(n) / SAMPLE_RATE
        phases = rng.uniform(0, 2 * np.pi, 3)
        samples = sum(a * np.sin(2 * np.pi * f * t + p) for a, f, p in zip((1.0, 0.5, 0.3), (50, 100, 150), phases))
    else:
        exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind]
        # Shape white noise in the frequency domain; power falls as 1/f^exponent down to 1 Hz.
        frequencies = np.maximum(np.fft.rfftfreq(n, d=1 / SAMPLE_RATE), 1.0)
        spectrum = np.fft.rfft(rng.standard_normal(n)) / frequencies ** (exponent / 2)
        samples = np.fft.irfft(spectrum, n)
    return at_level(samples, level_dbfs)


@pytest.fixture(scope="session")
def spoken() -> np.ndarray:
    """About 5 s of espeak-ng English at 16 kHz, around -20 dBFS."""
    return speech()


@pytest.fixture
def make_noise() -> Callable[..., np.ndarray]:
    return noise


@pytest.fixture
def scale_to_level() -> Callable[[np.ndarray, float], np.ndarray]:
    return at_level


@pytest.fixture(scope="session")
def extractor() -> AudioFeatureExtractor:
    return AudioFeatureExtractor()


@pytest.fixture(scope="session")
def detector() -> SpeechDetector:
    """The speech detector (test_blazeface.py's own fixture of this name is a face detector)."""
    return SpeechDetector()
