"""The audio path in front of the model: resampling, the recent-audio limit, speech windows only, pooling."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_service.features.audio import SAMPLE_RATE, resample
from fusion_service.features.audio_input import AudioInput, pool_window_probabilities, prepare_audio


def prepare(samples: np.ndarray, sample_rate: int, extractor, detector, **kwargs) -> AudioInput:
    return prepare_audio(samples, sample_rate, extractor=extractor, detector=detector, **kwargs)


def test_speech_at_44_1_khz_gives_features_of_its_speech_windows(spoken, extractor, detector):
    audio = prepare(resample(spoken, SAMPLE_RATE, 44100), 44100, extractor, detector)
    seconds = len(spoken) / SAMPLE_RATE
    assert audio.windows == int(np.ceil(seconds - 2.0)) + 1  # 2-s windows every 1 s, the last one at the end
    assert audio.speech_windows == audio.windows
    assert audio.features.shape == (audio.windows, 126, 98) and audio.features.dtype == np.float32


def test_features_are_those_of_the_extractor_for_the_same_window(spoken, extractor, detector):
    audio = prepare(spoken[: 2 * SAMPLE_RATE], SAMPLE_RATE, extractor, detector)
    assert (audio.windows, audio.speech_windows) == (1, 1)
    np.testing.assert_array_equal(audio.features[0], extractor(spoken[: 2 * SAMPLE_RATE]))


def test_silence_gives_no_speech_windows(extractor, detector):
    audio = prepare(np.zeros(5 * 22050, dtype=np.float32), 22050, extractor, detector)
    assert (audio.windows, audio.speech_windows) == (4, 0)
    assert audio.features.shape == (0, 126, 98) and audio.features.dtype == np.float32


def test_background_noise_gives_no_speech_windows(make_noise, extractor, detector):
    audio = prepare(make_noise("pink", -25, seconds=4.0), SAMPLE_RATE, extractor, detector)
    assert (audio.windows, audio.speech_windows) == (3, 0)


def test_only_speech_windows_are_kept(spoken, extractor, detector):
    silence = np.zeros(4 * SAMPLE_RATE, dtype=np.float32)
    audio = prepare(np.concatenate([silence, spoken[: 2 * SAMPLE_RATE]]), SAMPLE_RATE, extractor, detector)
    # Windows start at 0, 1, 2, 3 and 4 s: the first three hold only silence.
    assert (audio.windows, audio.speech_windows) == (5, 2)
    half_speech = np.concatenate([silence[:SAMPLE_RATE], spoken[:SAMPLE_RATE]])
    np.testing.assert_array_equal(audio.features, extractor.batch(np.stack([half_speech, spoken[: 2 * SAMPLE_RATE]])))


def test_only_the_last_max_seconds_are_used(spoken, extractor, detector):
    silence = np.zeros(12 * SAMPLE_RATE, dtype=np.float32)
    speech_long_ago = prepare(np.concatenate([spoken, silence]), SAMPLE_RATE, extractor, detector)
    assert (speech_long_ago.windows, speech_long_ago.speech_windows) == (9, 0)
    speech_just_now = prepare(np.concatenate([silence, spoken]), SAMPLE_RATE, extractor, detector, max_seconds=4)
    assert speech_just_now.windows == speech_just_now.speech_windows == 3


def test_empty_audio_is_one_silent_window(extractor, detector):
    audio = prepare(np.zeros(0, dtype=np.float32), 48000, extractor, detector)
    assert (audio.windows, audio.speech_windows) == (1, 0)


@pytest.mark.parametrize(
    "samples, kwargs, message",
    [
        (np.zeros((16000, 2), dtype=np.float32), {}, "mono"),
        (np.zeros(16000, dtype=np.float32), {"max_seconds": 0}, "max_seconds"),
    ],
)
def test_bad_input_is_rejected(extractor, detector, samples, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prepare(samples, SAMPLE_RATE, extractor, detector, **kwargs)


def test_pooling_averages_windows():
    pooled = pool_window_probabilities(np.array([[0.2, 0.8, 0.0], [0.6, 0.2, 0.2]], dtype=np.float32))
    np.testing.assert_allclose(pooled, [0.4, 0.5, 0.1], rtol=1e-6)
    assert pooled.dtype == np.float32


def test_pooling_renormalises_to_one():
    pooled = pool_window_probabilities(np.array([[1.0, 3.0], [2.0, 2.0]]))
    np.testing.assert_allclose(pooled, [3 / 8, 5 / 8], rtol=1e-6)
    assert pooled.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "probabilities", [np.zeros((0, 7)), np.full(7, 1 / 7), np.zeros((2, 7)), np.full((1, 7), np.nan)]
)
def test_pooling_rejects_what_cannot_be_pooled(probabilities):
    with pytest.raises(ValueError):
        pool_window_probabilities(probabilities)
