"""The numpy/scipy features must equal librosa's, since training recipes and papers are written in its terms."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import librosa
import numpy as np
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st

from fusion_service.features.audio import (
    CHROMA_COLUMNS as CHROMA,
    FEATURE_NAMES,
    LOG_MEL_COLUMNS as LOG_MEL,
    MFCC_COLUMNS as MFCC,
    N_CHROMA,
    N_FEATURES,
    N_FFT,
    N_FRAMES,
    N_MELS,
    N_MFCC,
    RMS_COLUMN as RMS,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    ZCR_COLUMN as ZCR,
    chroma_filterbank,
    mel_filterbank,
    resample,
    split_windows,
)

STFT = dict(sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=256, center=True, pad_mode="constant")
TIME = np.arange(WINDOW_SAMPLES) / SAMPLE_RATE


def chirp() -> np.ndarray:
    return (0.5 * scipy.signal.chirp(TIME, f0=60, t1=TIME[-1], f1=7500, method="logarithmic")).astype(np.float32)


def harmonic_tone_with_vibrato() -> np.ndarray:
    """A 220 Hz voice-like tone: 6 harmonics, 5 Hz vibrato of +-3 %."""
    phase = 2 * np.pi * 220 * (TIME - 0.03 / (2 * np.pi * 5) * np.cos(2 * np.pi * 5 * TIME))
    tone = sum(np.sin(k * phase) / k for k in range(1, 7))
    return (0.3 * tone / np.abs(tone).max()).astype(np.float32)


def noise_burst() -> np.ndarray:
    """0.5 s of white noise amid exact silence, after 0.2 s of sign-flipping values too small to count as
    zero crossings: covers all-zero frames, exact zeros and librosa's 1e-10 zero threshold."""
    samples = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    samples[: int(0.2 * SAMPLE_RATE)] = 1e-11 * (-1) ** np.arange(int(0.2 * SAMPLE_RATE))
    burst = slice(int(0.7 * SAMPLE_RATE), int(1.2 * SAMPLE_RATE))
    samples[burst] = 0.2 * np.random.default_rng(3).standard_normal(burst.stop - burst.start)
    return samples


SIGNALS = {"chirp": chirp, "harmonic tone with vibrato": harmonic_tone_with_vibrato, "noise burst": noise_burst}


@pytest.fixture(scope="module", params=list(SIGNALS))
def signal_and_features(request, extractor) -> tuple[np.ndarray, np.ndarray]:
    samples = SIGNALS[request.param]()
    return samples, extractor(samples)


def librosa_log_mel(samples: np.ndarray) -> np.ndarray:
    # The reference runs in float64 so that it is exact; our features are compared after float32 rounding.
    mel = librosa.feature.melspectrogram(y=samples.astype(np.float64), n_mels=N_MELS, htk=False, norm="slaney", **STFT)
    return librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)


def test_mel_filter_bank_is_librosas():
    expected = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, htk=False, norm="slaney", dtype=np.float64)
    ours = mel_filterbank()
    assert ours.shape == expected.shape == (N_MELS, N_FFT // 2 + 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


def test_chroma_filter_bank_is_librosas():
    expected = librosa.filters.chroma(sr=SAMPLE_RATE, n_fft=N_FFT, n_chroma=N_CHROMA, tuning=0.0, dtype=np.float64)
    ours = chroma_filterbank()
    assert ours.shape == expected.shape == (N_CHROMA, N_FFT // 2 + 1)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)


def test_mfcc_matches_librosa(signal_and_features):
    samples, features = signal_and_features
    expected = librosa.feature.mfcc(S=librosa_log_mel(samples), n_mfcc=N_MFCC).T
    np.testing.assert_allclose(features[:, MFCC], expected, rtol=1e-4, atol=1e-3)


def test_chroma_matches_librosa(signal_and_features):
    samples, features = signal_and_features
    expected = librosa.feature.chroma_stft(y=samples.astype(np.float64), tuning=0.0, n_chroma=N_CHROMA, **STFT).T
    np.testing.assert_allclose(features[:, CHROMA], expected, rtol=1e-4, atol=1e-6)


def test_zero_crossing_rate_matches_librosa(signal_and_features):
    samples, features = signal_and_features
    expected = librosa.feature.zero_crossing_rate(
        samples.astype(np.float64), frame_length=N_FFT, hop_length=256, center=True
    )
    np.testing.assert_allclose(features[:, ZCR], expected[0], rtol=0, atol=1e-7)


def test_rms_matches_librosa(signal_and_features):
    samples, features = signal_and_features
    expected = librosa.feature.rms(
        y=samples.astype(np.float64), frame_length=N_FFT, hop_length=256, center=True, pad_mode="constant"
    )
    np.testing.assert_allclose(features[:, RMS], expected[0], rtol=1e-4, atol=1e-9)


def test_log_mel_matches_librosa(signal_and_features):
    samples, features = signal_and_features
    np.testing.assert_allclose(features[:, LOG_MEL], librosa_log_mel(samples).T, rtol=1e-4, atol=1e-3)


def test_features_are_float32_frames_by_features(signal_and_features):
    _, features = signal_and_features
    assert features.shape == (N_FRAMES, N_FEATURES) == (126, 98)
    assert features.dtype == np.float32


def test_feature_names_follow_the_documented_order():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == N_FEATURES
    assert FEATURE_NAMES[0] == "mfcc_0" and FEATURE_NAMES[N_MFCC - 1] == "mfcc_19"
    assert FEATURE_NAMES[CHROMA] == tuple(f"chroma_{i}" for i in range(12))
    assert (FEATURE_NAMES[ZCR], FEATURE_NAMES[RMS]) == ("zcr", "rms")
    assert FEATURE_NAMES[LOG_MEL][0] == "mel_0" and FEATURE_NAMES[-1] == "mel_63"


def test_silence_gives_the_floor_values(extractor):
    features = extractor(np.zeros(WINDOW_SAMPLES, dtype=np.float32))
    np.testing.assert_array_equal(features[:, LOG_MEL], -100.0)
    np.testing.assert_array_equal(features[:, CHROMA], 0.0)
    np.testing.assert_array_equal(features[:, [ZCR, RMS]], 0.0)


def test_batch_equals_one_window_at_a_time(extractor):
    windows = np.stack([make() for make in SIGNALS.values()])
    batched = extractor.batch(windows)
    assert batched.shape == (3, N_FRAMES, N_FEATURES) and batched.dtype == np.float32
    for window, features in zip(windows, batched):
        np.testing.assert_allclose(features, extractor(window), rtol=1e-6, atol=1e-6)


def test_one_extractor_can_serve_several_threads(extractor):
    signals = [make() for make in SIGNALS.values()]
    expected = [extractor(samples) for samples in signals]

    def extract_repeatedly(index: int) -> bool:
        return all(np.array_equal(extractor(signals[index]), expected[index]) for _ in range(20))

    with ThreadPoolExecutor(max_workers=len(signals)) as pool:
        assert all(pool.map(extract_repeatedly, range(len(signals))))


def test_empty_batch_gives_no_features(extractor):
    assert extractor.batch(np.zeros((0, WINDOW_SAMPLES), dtype=np.float32)).shape == (0, N_FRAMES, N_FEATURES)


@pytest.mark.parametrize("shape", [(WINDOW_SAMPLES - 1,), (WINDOW_SAMPLES + 1,), (1, WINDOW_SAMPLES), ()])
def test_a_window_of_the_wrong_shape_is_rejected(extractor, shape):
    with pytest.raises(ValueError, match=f"{WINDOW_SAMPLES} samples"):
        extractor(np.zeros(shape, dtype=np.float32))


@pytest.mark.parametrize("shape", [(WINDOW_SAMPLES,), (2, WINDOW_SAMPLES - 1), (2, 1, WINDOW_SAMPLES)])
def test_a_batch_of_the_wrong_shape_is_rejected(extractor, shape):
    with pytest.raises(ValueError, match=f"W, {WINDOW_SAMPLES}"):
        extractor.batch(np.zeros(shape, dtype=np.float32))


def test_non_finite_samples_are_rejected(extractor):
    window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    window[100] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        extractor(window)


# --- resample ---


def test_resample_keeps_a_tone_at_its_frequency_and_level():
    rate = 44100
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(rate) / rate)).astype(np.float32)
    resampled = resample(tone, rate)
    assert resampled.dtype == np.float32
    assert resampled.shape == (SAMPLE_RATE,)
    spectrum = np.abs(np.fft.rfft(resampled[1000:-1000] * np.hanning(SAMPLE_RATE - 2000)))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / (SAMPLE_RATE - 2000)
    assert abs(peak_hz - 1000) < 1
    # Within the anti-aliasing filter's passband ripple (about 0.1 %).
    np.testing.assert_allclose(np.sqrt(np.mean(resampled[1000:-1000] ** 2)), 0.5 / np.sqrt(2), rtol=5e-3)


def test_resample_uses_the_reduced_polyphase_ratio():
    samples = np.random.default_rng(0).standard_normal(22050).astype(np.float32)
    expected = scipy.signal.resample_poly(samples, 320, 441)  # 16000/22050 reduced
    np.testing.assert_allclose(resample(samples, 22050), expected, rtol=1e-5, atol=1e-6)


def test_resample_at_the_same_rate_returns_an_equal_copy():
    samples = np.linspace(-1, 1, 100, dtype=np.float32)
    resampled = resample(samples, SAMPLE_RATE)
    np.testing.assert_array_equal(resampled, samples)
    assert resampled is not samples


@pytest.mark.parametrize("rates", [(0, SAMPLE_RATE), (-8000, SAMPLE_RATE), (22050.5, SAMPLE_RATE), (8000, 0)])
def test_resample_rejects_rates_that_are_not_positive_whole_numbers(rates):
    with pytest.raises(ValueError, match="positive whole number"):
        resample(np.zeros(10, dtype=np.float32), *rates)


# --- split_windows ---


def test_split_pads_short_audio_equally_at_both_ends():
    windows = split_windows(np.ones(10001, dtype=np.float32))
    assert windows.shape == (1, WINDOW_SAMPLES) and windows.dtype == np.float32
    audio = np.flatnonzero(windows[0])
    assert len(audio) == 10001 and audio[-1] - audio[0] == 10000
    zeros_before, zeros_after = audio[0], WINDOW_SAMPLES - 1 - audio[-1]
    assert (zeros_before, zeros_after) == (10999, 11000)


def test_split_of_empty_audio_is_one_silent_window():
    np.testing.assert_array_equal(split_windows(np.zeros(0, dtype=np.float32)), np.zeros((1, WINDOW_SAMPLES)))


def test_split_of_exactly_one_window_returns_it():
    samples = np.random.default_rng(0).standard_normal(WINDOW_SAMPLES).astype(np.float32)
    np.testing.assert_array_equal(split_windows(samples), samples[np.newaxis])


def test_split_aligns_the_last_window_with_the_end():
    samples = np.arange(50000, dtype=np.float32)
    windows = split_windows(samples)  # starts 0, 16000, then 18000 for the tail
    np.testing.assert_array_equal(windows[:, 0], [0, 16000, 18000])
    np.testing.assert_array_equal(windows[-1], samples[-WINDOW_SAMPLES:])


def test_split_does_not_repeat_a_window_that_already_ends_at_the_end():
    windows = split_windows(np.arange(48000, dtype=np.float32))
    np.testing.assert_array_equal(windows[:, 0], [0, 16000])


def test_split_keeps_the_most_recent_windows():
    windows = split_windows(np.arange(80000, dtype=np.float32), max_windows=2)
    np.testing.assert_array_equal(windows[:, 0], [32000, 48000])


@given(
    length=st.integers(0, 400),
    window=st.integers(1, 64),
    hop=st.integers(1, 64),
    max_windows=st.one_of(st.none(), st.integers(1, 5)),
)
def test_split_covers_the_audio_up_to_its_end(length, window, hop, max_windows):
    samples = np.arange(1, length + 1, dtype=np.float32)  # no zeros, so padding is recognisable
    windows = split_windows(samples, window=window, hop=hop, max_windows=max_windows)
    assert windows.shape[1] == window
    if length <= window:
        assert windows.shape[0] == 1 and np.count_nonzero(windows) == length
        return
    starts = windows[:, 0].astype(int) - 1
    assert starts[-1] == length - window
    gaps = np.diff(starts)
    assert np.all(gaps[:-1] == hop) and np.all((gaps[-1:] > 0) & (gaps[-1:] <= hop))
    if max_windows is None:
        assert starts[0] == 0
    else:
        assert len(starts) <= max_windows
    for start, cut in zip(starts, windows):
        np.testing.assert_array_equal(cut, samples[start : start + window])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(samples=np.zeros((2, 100))), "1-D"),
        (dict(samples=np.zeros(100), hop=0), "positive"),
        (dict(samples=np.zeros(100), window=0), "positive"),
        (dict(samples=np.zeros(100), max_windows=0), "max_windows"),
    ],
)
def test_split_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        split_windows(**kwargs)
