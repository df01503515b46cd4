"""Speech must be found, in quiet and in noise; silence and steady background noise must not pass as speech."""

from __future__ import annotations

import numpy as np
import pytest

from fusion_service.features.audio import SAMPLE_RATE, WINDOW_SAMPLES, split_windows
from fusion_service.features.speech import FRAME_SAMPLES, SpeechDetector, percentile


@pytest.fixture(scope="module")
def speech_windows(spoken) -> np.ndarray:
    """Every 2-s window (hop 1 s) of the spoken sentence, as the service would see them."""
    return split_windows(spoken)


def test_every_window_of_speech_is_speech(detector, speech_windows):
    for window in speech_windows:
        assert detector.is_speech(window)
        assert detector.speech_seconds(window) >= 1.0


def test_speech_in_pink_noise_at_10_db_snr_is_speech(detector, speech_windows, make_noise):
    for seed, window in enumerate(speech_windows):
        level = 20 * np.log10(np.sqrt(np.mean(np.square(window, dtype=np.float64))))
        noisy = window + make_noise("pink", level - 10, seed=seed)
        assert detector.is_speech(noisy), f"window {seed}"


@pytest.mark.parametrize("level_dbfs", [-40, -55])
def test_quiet_speech_is_speech(detector, speech_windows, scale_to_level, level_dbfs):
    # -55 dBFS is as soft as the softest actor of the held-out validation speakers.
    assert detector.is_speech(scale_to_level(speech_windows[0], level_dbfs))


def test_faint_speech_below_the_level_floor_is_not_speech(detector, speech_windows, scale_to_level):
    # At -65 dBFS the speech is someone far away: webrtcvad alone would still find about 0.8 s of it.
    assert not detector.is_speech(scale_to_level(speech_windows[0], -65))


def test_digital_silence_is_not_speech(detector):
    assert detector.speech_seconds(np.zeros(WINDOW_SAMPLES, dtype=np.float32)) == 0.0


def test_a_dc_offset_is_not_speech(detector):
    assert detector.speech_seconds(np.full(WINDOW_SAMPLES, 0.1, dtype=np.float32)) == 0.0


def test_very_quiet_noise_is_not_speech(detector, make_noise):
    assert not detector.is_speech(make_noise("white", -70))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("level_dbfs", [-40, -30, -25, -20])
@pytest.mark.parametrize("kind", ["white", "pink", "brown", "hum"])
def test_steady_noise_is_not_speech(detector, make_noise, kind, level_dbfs, seed):
    # Well below min_speech_seconds (0.3 s), not just under it.
    assert detector.speech_seconds(make_noise(kind, level_dbfs, seed=seed)) <= 0.1


def test_is_speech_honours_min_speech_seconds(speech_windows):
    window = speech_windows[0]
    found = SpeechDetector().speech_seconds(window)
    assert SpeechDetector(min_speech_seconds=found).is_speech(window)
    assert not SpeechDetector(min_speech_seconds=found + 0.03).is_speech(window)


def test_speech_frames_cover_whole_30_ms_frames(detector, spoken):
    frames = detector.speech_frames(spoken[: 10 * FRAME_SAMPLES + 5])
    assert frames.shape == (10,) and frames.dtype == bool
    assert detector.speech_seconds(spoken[: FRAME_SAMPLES - 1]) == 0.0


def test_a_longer_clip_is_judged_as_a_whole(detector, spoken):
    assert detector.speech_seconds(spoken) > 0.5 * len(spoken) / SAMPLE_RATE


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(aggressiveness=4), "aggressiveness"),
        (dict(background_percentile=101), "background_percentile"),
        (dict(min_speech_seconds=-1), "min_speech_seconds"),
        (dict(highpass_hz=9000), "highpass_hz"),
    ],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SpeechDetector(**kwargs)


@pytest.mark.parametrize("samples, message", [(np.zeros((2, 16000)), "1-D"), (np.full(16000, np.nan), "NaN")])
def test_bad_audio_is_rejected(detector, samples, message):
    with pytest.raises(ValueError, match=message):
        detector.is_speech(samples)


@pytest.mark.parametrize("q", [0.0, 10.0, 37.5, 50.0, 100.0])
@pytest.mark.parametrize("count", [1, 2, 66, 67])
def test_the_background_percentile_is_numpys(q, count):
    values = np.random.default_rng(count).normal(-40, 10, count)
    assert percentile(values, q) == pytest.approx(np.percentile(values, q), abs=1e-12)
