"""Waveform augmentation: each degradation does what its name says, at the level asked for."""

import numpy as np
import pytest

from fusion_service.features.audio import SAMPLE_RATE
from training.audio_dataset import (
    AugmentConfig,
    Augmenter,
    add_noise,
    babble,
    band_limit,
    change_speed,
    coloured_noise,
    reverberate,
    shift,
    speech_power,
)

RNG = np.random.default_rng(3)


def syllables(seconds: float = 1.5, frequency: float = 180.0) -> np.ndarray:
    """A voiced tone switched on and off like syllables, with silence before and after."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    envelope = (np.sin(2 * np.pi * 4 * t) > 0) & (t > 0.3) & (t < seconds - 0.3)
    return (0.3 * np.sin(2 * np.pi * frequency * t) * envelope).astype(np.float32)


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 0.0])
def test_add_noise_reaches_the_requested_snr_over_the_speech(snr_db):
    clean = syllables()
    noisy = add_noise(clean, coloured_noise(len(clean), 1.0, RNG), snr_db)
    noise = noisy - clean
    measured = 10 * np.log10(speech_power(clean) / np.mean(noise.astype(np.float64) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.1)


def test_speech_power_ignores_leading_and_trailing_silence():
    clip = syllables()
    padded = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), clip, np.zeros(SAMPLE_RATE, np.float32)])
    assert speech_power(padded) == pytest.approx(speech_power(clip), rel=0.05)


def test_coloured_noise_slopes_down_by_its_exponent():
    def band_power(noise, low, high):
        spectrum = np.abs(np.fft.rfft(noise)) ** 2
        frequencies = np.fft.rfftfreq(len(noise), 1 / SAMPLE_RATE)
        return spectrum[(frequencies >= low) & (frequencies < high)].mean()

    for exponent, expected_db_per_decade in ((0.0, 0.0), (1.0, -10.0), (2.0, -20.0)):
        noise = coloured_noise(4 * SAMPLE_RATE, exponent, RNG)
        slope = 10 * np.log10(band_power(noise, 2000, 2200) / band_power(noise, 200, 220))
        assert slope == pytest.approx(expected_db_per_decade, abs=1.5)


def test_babble_mixes_the_requested_number_of_voices():
    voices = [syllables(frequency=f) for f in (150.0, 220.0, 300.0, 400.0)]
    mix = babble(voices, 2 * SAMPLE_RATE, 3, RNG)
    assert mix.shape == (2 * SAMPLE_RATE,)
    spectrum = np.abs(np.fft.rfft(mix))
    frequencies = np.fft.rfftfreq(len(mix), 1 / SAMPLE_RATE)
    present = [f for f in (150.0, 220.0, 300.0, 400.0)
               if spectrum[np.argmin(np.abs(frequencies - f))] > 0.1 * spectrum.max()]
    assert len(present) == 3


def test_speed_change_shortens_and_raises_pitch():
    clip = syllables()
    faster = change_speed(clip, 1.1)
    assert len(faster) == pytest.approx(len(clip) / 1.1, abs=2)
    peak = np.fft.rfftfreq(len(faster), 1 / SAMPLE_RATE)[np.argmax(np.abs(np.fft.rfft(faster)))]
    assert peak == pytest.approx(180.0 * 1.1, abs=3)


def test_shift_delays_or_cuts_the_start():
    clip = syllables()
    later = shift(clip, 0.25)
    assert len(later) == len(clip) + SAMPLE_RATE // 4 and not later[: SAMPLE_RATE // 4].any()
    np.testing.assert_array_equal(shift(clip, -0.25), clip[SAMPLE_RATE // 4:])


def test_augmenter_is_reproducible_and_takes_babble_only_from_other_speakers():
    own_voice = syllables(frequency=150.0)
    others = syllables(frequency=400.0)
    voices = {"a": [own_voice], "b": [others]}
    config = AugmentConfig(noise_probability=1.0, snr_db=(0.0, 0.0), babble_probability=1.0, speeds=(1.0,),
                           max_shift_seconds=0.0, gain_db=(0.0, 0.0), babble_talkers=(1, 2))
    first = Augmenter(config, voices, seed=1)(own_voice, "a")
    again = Augmenter(config, voices, seed=1)(own_voice, "a")
    np.testing.assert_array_equal(first, again)
    added = first - own_voice
    spectrum = np.abs(np.fft.rfft(added))
    frequencies = np.fft.rfftfreq(len(added), 1 / SAMPLE_RATE)
    assert frequencies[np.argmax(spectrum)] == pytest.approx(400.0, abs=2)  # the other speaker, not "a"


def band_energy_db(clip: np.ndarray, low: float, high: float) -> float:
    spectrum = np.abs(np.fft.rfft(clip.astype(np.float64))) ** 2
    frequencies = np.fft.rfftfreq(len(clip), 1 / SAMPLE_RATE)
    return 10 * np.log10(spectrum[(frequencies >= low) & (frequencies < high)].sum() + 1e-20)


def test_band_limit_keeps_the_voice_band_and_removes_what_lies_outside():
    noise = coloured_noise(2 * SAMPLE_RATE, 0.0, RNG)
    limited = band_limit(noise, 300.0, 3400.0)
    assert band_energy_db(limited, 500, 3000) == pytest.approx(band_energy_db(noise, 500, 3000), abs=1.5)
    assert band_energy_db(limited, 5000, 8000) < band_energy_db(noise, 5000, 8000) - 30
    assert band_energy_db(limited, 0, 100) < band_energy_db(noise, 0, 100) - 15


def test_reverberation_keeps_length_and_speech_power_and_lets_sound_ring_on():
    clip = syllables()
    wet = reverberate(clip, 0.6, np.random.default_rng(1))
    assert wet.shape == clip.shape and wet.dtype == np.float32
    assert speech_power(wet) == pytest.approx(speech_power(clip), rel=0.01)
    # Right after the last syllable the dry clip is silent; the room still rings.
    end = len(clip) / SAMPLE_RATE
    after = slice(int((end - 0.28) * SAMPLE_RATE), int((end - 0.18) * SAMPLE_RATE))
    assert np.abs(clip[after]).max() == 0.0
    assert np.sqrt(np.mean(wet[after].astype(np.float64) ** 2)) > 0.01 * np.sqrt(speech_power(clip))


def test_augmenter_applies_reverberation_and_band_limits_when_asked():
    clip = 0.1 * coloured_noise(SAMPLE_RATE, 0.0, RNG)
    plain = AugmentConfig(noise_probability=0.0, speeds=(1.0,), max_shift_seconds=0.0, gain_db=(0.0, 0.0))
    limited = AugmentConfig(**{**plain.__dict__, "band_limit_probability": 1.0, "band_high_hz": (3400.0, 3400.0)})
    untouched = Augmenter(plain, {}, seed=0)(clip, "ravdess:01")
    narrowed = Augmenter(limited, {}, seed=0)(clip, "ravdess:01")
    np.testing.assert_allclose(untouched, clip, atol=1e-6)
    assert band_energy_db(narrowed, 5000, 8000) < band_energy_db(clip, 5000, 8000) - 30
    reverberant = AugmentConfig(**{**plain.__dict__, "reverb_probability": 1.0})
    assert not np.allclose(Augmenter(reverberant, {}, seed=0)(clip, "ravdess:01"), untouched, atol=1e-3)
