"""The audio path in front of the audio model, shared by the live service and the evaluation CLI so that
both judge exactly the same windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion_service.features.audio import SAMPLE_RATE, WINDOW_SAMPLES, AudioFeatureExtractor, resample, split_windows
from fusion_service.features.speech import SpeechDetector

WINDOW_HOP_SAMPLES = SAMPLE_RATE  # 1 s: consecutive 2-s windows overlap by half


@dataclass(frozen=True)
class AudioInput:
    """Model input for one audio clip: features of its speech windows only, plus how many windows it had."""

    features: np.ndarray  # float32 [speech_windows, 126, 98]
    windows: int
    speech_windows: int


def prepare_audio(
    samples: np.ndarray,
    sample_rate: int,
    *,
    extractor: AudioFeatureExtractor,
    detector: SpeechDetector,
    max_seconds: float = 10.0,
) -> AudioInput:
    """Float32 mono audio in [-1, 1] at any rate -> features of the speech windows among its last max_seconds.

    Only the most recent audio is kept because the answer should describe how the speaker sounds now.
    Windows without speech are dropped: the model was never meant to classify silence or noise.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected 1-D mono audio, got shape {samples.shape}; mix channels down first")
    if max_seconds <= 0:
        raise ValueError(f"max_seconds must be positive, got {max_seconds}")

    kept = min(samples.shape[0], max(1, round(max_seconds * sample_rate)))
    audio = resample(samples[samples.shape[0] - kept :], sample_rate, SAMPLE_RATE)
    windows = split_windows(audio, WINDOW_SAMPLES, WINDOW_HOP_SAMPLES)
    speech = np.array([detector.is_speech(window) for window in windows], dtype=bool)
    return AudioInput(
        features=extractor.batch(windows[speech]),
        windows=len(windows),
        speech_windows=int(np.count_nonzero(speech)),
    )


def pool_window_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """[windows, classes] per-window probabilities -> [classes], their mean renormalised to sum to 1."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 2 or probabilities.shape[0] == 0:
        raise ValueError(
            f"expected per-window probabilities shaped [windows >= 1, classes], got shape {probabilities.shape}"
        )
    mean = probabilities.mean(axis=0)
    total = mean.sum()
    if not np.isfinite(total) or total <= 0:
        raise ValueError(f"window probabilities must be finite and not all zero, got column means {mean}")
    return (mean / total).astype(np.float32)
