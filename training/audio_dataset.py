"""Training windows for the voice model, cut and filtered exactly as the live service cuts and filters them.

Every clip, clean or augmented, goes through fusion_service.features.audio_input.prepare_audio: the same 2 s windows,
the same speech filter, the same features. Augmentation works on the waveform, before that: speed perturbation
(tempo and pitch together, as Kaldi's recipe), time shift, room reverberation, noise at realistic SNRs
(coloured noise, and babble made from other training speakers), the band limits of cheap microphones and
telephone lines, and gain. Each corpus has its own room and microphone; these put every corpus's voices
through many rooms and channels, so that none of them stands for an emotion. It is resampling, FFT shaping,
filters and sums, cheap enough for 2 CPU cores. Augmented copies carry their source clip's speaker, so they stay on its side of every split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.signal

from fusion_service.features.audio import N_FEATURES, N_FRAMES, SAMPLE_RATE, AudioFeatureExtractor, resample
from fusion_service.features.audio_input import prepare_audio
from fusion_service.features.speech import SpeechDetector
from protos.emotion.v1.constants import LABELS
from training.speech_corpora import SpeechRecord, read_audio

log = logging.getLogger(__name__)

_POWER_FRAME = 400  # 25 ms frames to find where the speech is when measuring its power
_ACTIVE_DB = 30.0  # frames within this many dB of the loudest count as speech


# ---- augmentation -------------------------------------------------------------------------------------------

def speech_power(clip: np.ndarray) -> float:
    """Mean power over the active part of a clip, so leading and trailing silence do not inflate the SNR."""
    usable = len(clip) // _POWER_FRAME * _POWER_FRAME
    if usable == 0:
        return float(np.mean(np.asarray(clip, dtype=np.float64) ** 2))
    frame_power = np.mean(np.asarray(clip[:usable], dtype=np.float64).reshape(-1, _POWER_FRAME) ** 2, axis=1)
    loudest = frame_power.max()
    if loudest <= 0:
        return 0.0
    return float(frame_power[frame_power >= loudest * 10 ** (-_ACTIVE_DB / 10)].mean())


def add_noise(clip: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clip + noise scaled so that speech power over noise power is snr_db; noise is tiled or cut to fit."""
    noise = _fit_length(noise, len(clip)).astype(np.float64)
    noise_power = np.mean(noise**2)
    if noise_power <= 0:
        return np.array(clip, dtype=np.float32)
    scale = np.sqrt(speech_power(clip) / (noise_power * 10 ** (snr_db / 10)))
    return (clip + scale * noise).astype(np.float32)


def coloured_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum 1/f**exponent: 0 white (hiss), 1 pink (fans, rooms), 2 brown (rumble)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.fft.rfftfreq(length, d=1.0 / SAMPLE_RATE)
    frequencies[0] = frequencies[1] if length > 1 else 1.0
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=length)
    return (noise / (np.std(noise) + 1e-12)).astype(np.float32)


def babble(voices: Sequence[np.ndarray], length: int, talkers: int, rng: np.random.Generator) -> np.ndarray:
    """Several other people talking at once: a sum of random clips at equal level, each at a random start."""
    mix = np.zeros(length, dtype=np.float64)
    for index in rng.choice(len(voices), size=min(talkers, len(voices)), replace=False):
        voice = np.roll(_fit_length(voices[index], length), int(rng.integers(length)))
        mix += voice / (np.sqrt(speech_power(voice)) + 1e-9)
    return mix.astype(np.float32)


def change_speed(clip: np.ndarray, factor: float) -> np.ndarray:
    """Play faster (factor > 1) or slower: tempo and pitch move together."""
    return resample(clip, round(SAMPLE_RATE * factor), SAMPLE_RATE)


def shift(clip: np.ndarray, seconds: float) -> np.ndarray:
    """Positive: start later (silence before); negative: cut the start off."""
    samples = int(round(abs(seconds) * SAMPLE_RATE))
    if seconds >= 0:
        return np.concatenate([np.zeros(samples, dtype=np.float32), clip])
    return clip[min(samples, len(clip) - 1):]


def reverberate(clip: np.ndarray, rt60_seconds: float, rng: np.random.Generator) -> np.ndarray:
    """The clip in a room whose echo decays by 60 dB in rt60_seconds, at the clip's speech power; as long as
    the clip. The impulse response is the direct sound, then exponentially decaying noise of the same energy
    (a talker about a metre from the microphone)."""
    length = max(2, int(rt60_seconds * SAMPLE_RATE))
    tail = rng.standard_normal(length) * np.exp(-6.9 * np.arange(length) / length)  # ln(1000) = 6.9: -60 dB
    response = np.concatenate([[1.0], tail / np.sqrt(np.sum(tail**2))])
    wet = scipy.signal.fftconvolve(clip.astype(np.float64), response)[: len(clip)]
    return (wet * np.sqrt(speech_power(clip) / (speech_power(wet) + 1e-20))).astype(np.float32)


def band_limit(clip: np.ndarray, low_hz: float, high_hz: float) -> np.ndarray:
    """Keep low_hz..high_hz (4th-order Butterworth band-pass): a small microphone, a phone or VoIP line."""
    sections = scipy.signal.butter(4, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")
    return scipy.signal.sosfilt(sections, clip).astype(np.float32)


def _fit_length(signal: np.ndarray, length: int) -> np.ndarray:
    if len(signal) >= length:
        return signal[:length]
    return np.tile(signal, int(np.ceil(length / len(signal))))[:length]


@dataclass(frozen=True)
class AugmentConfig:
    noise_probability: float = 0.8
    snr_db: tuple[float, float] = (0.0, 25.0)
    babble_probability: float = 0.5  # of the noisy copies; the rest get coloured noise
    babble_talkers: tuple[int, int] = (3, 7)
    noise_exponents: tuple[float, ...] = (0.0, 1.0, 2.0)
    speeds: tuple[float, ...] = (0.9, 0.95, 1.0, 1.05, 1.1)
    max_shift_seconds: float = 0.3
    gain_db: tuple[float, float] = (-6.0, 6.0)
    reverb_probability: float = 0.0
    rt60_seconds: tuple[float, float] = (0.2, 0.8)
    band_limit_probability: float = 0.0
    band_low_hz: tuple[float, float] = (80.0, 300.0)
    band_high_hz: tuple[float, float] = (3400.0, 7000.0)


class Augmenter:
    """Random realistic degradations of a clip; babble comes from speakers other than the clip's own."""

    def __init__(self, config: AugmentConfig, voices: dict[str, list[np.ndarray]], seed: int) -> None:
        self.config = config
        self.voices = voices  # speaker -> clips, the babble material
        self.rng = np.random.default_rng(seed)

    def __call__(self, clip: np.ndarray, speaker: str) -> np.ndarray:
        config, rng = self.config, self.rng
        clip = change_speed(clip, float(rng.choice(config.speeds)))
        clip = shift(clip, float(rng.uniform(-config.max_shift_seconds, config.max_shift_seconds)))
        if rng.random() < config.reverb_probability:
            clip = reverberate(clip, float(rng.uniform(*config.rt60_seconds)), rng)
        if rng.random() < config.noise_probability:
            clip = add_noise(clip, self.noise(len(clip), speaker), float(rng.uniform(*config.snr_db)))
        if rng.random() < config.band_limit_probability:
            clip = band_limit(clip, float(rng.uniform(*config.band_low_hz)), float(rng.uniform(*config.band_high_hz)))
        clip = clip * np.float32(10 ** (rng.uniform(*config.gain_db) / 20))
        return np.clip(clip, -1.0, 1.0).astype(np.float32)

    def noise(self, length: int, speaker: str, kind: str | None = None) -> np.ndarray:
        """kind: "babble", "pink", ... or None for a random choice."""
        if kind is None:
            kind = "babble" if self.rng.random() < self.config.babble_probability else "coloured"
        if kind == "babble":
            others = [clip for other, clips in self.voices.items() if other != speaker for clip in clips]
            if others:
                return babble(others, length, int(self.rng.integers(*self.config.babble_talkers)), self.rng)
        exponent = {"white": 0.0, "pink": 1.0, "brown": 2.0}.get(kind)
        if exponent is None:
            exponent = float(self.rng.choice(self.config.noise_exponents))
        return coloured_noise(length, exponent, self.rng)


# ---- windows ------------------------------------------------------------------------------------------------

@dataclass
class WindowSet:
    """Speech windows with where each came from; row i of every array describes window i."""

    features: np.ndarray  # float32 [N, N_FRAMES, N_FEATURES]
    labels: np.ndarray  # int32 [N], index into LABELS
    speakers: np.ndarray  # str [N]
    clips: np.ndarray  # int32 [N], index of the source record
    copies: np.ndarray  # int32 [N], 0 = the clean clip, k = its k-th augmented copy

    def select(self, mask: np.ndarray) -> WindowSet:
        return WindowSet(self.features[mask], self.labels[mask], self.speakers[mask], self.clips[mask],
                         self.copies[mask])


def clip_windows(clip: np.ndarray, extractor: AudioFeatureExtractor, detector: SpeechDetector) -> np.ndarray:
    """Features of a clip's speech windows [S, N_FRAMES, N_FEATURES], by the live service's own code."""
    return prepare_audio(clip, SAMPLE_RATE, extractor=extractor, detector=detector).features


def build_windows(
    records: Sequence[SpeechRecord],
    augmented_copies: int,
    config: AugmentConfig,
    seed: int,
    cache_dir: Path | None = None,
) -> WindowSet:
    """Windows of every clip and of augmented_copies degraded versions of it; cached under cache_dir."""
    extractor, detector = AudioFeatureExtractor(), SpeechDetector()
    cache = None
    if cache_dir is not None:
        # The detector's settings choose which windows exist: a change to them must not reuse old windows.
        key = json.dumps([[str(r.path) for r in records], augmented_copies, asdict(config), seed,
                          detector.settings()])
        cache = Path(cache_dir) / f"audio_windows_{hashlib.sha1(key.encode()).hexdigest()[:16]}.npz"
        if cache.exists():
            log.info("windows from cache %s", cache)
            with np.load(cache) as stored:
                return WindowSet(**{name: stored[name] for name in stored.files})

    clips = [read_audio(record.path) for record in records]
    voices: dict[str, list[np.ndarray]] = {}
    for record, clip in zip(records, clips):
        voices.setdefault(record.speaker, []).append(clip)
    augmenter = Augmenter(config, voices, seed)

    features, labels, speakers, sources, copies = [], [], [], [], []
    started = time.monotonic()
    for index, (record, clip) in enumerate(zip(records, clips)):
        for copy in range(augmented_copies + 1):
            version = clip if copy == 0 else augmenter(clip, record.speaker)
            windows = clip_windows(version, extractor, detector)
            features.append(windows)
            labels += [LABELS.index(record.label)] * len(windows)
            speakers += [record.speaker] * len(windows)
            sources += [index] * len(windows)
            copies += [copy] * len(windows)
        if (index + 1) % 250 == 0 or index + 1 == len(records):
            log.info("windows: %d/%d clips, %d windows, %.0f s", index + 1, len(records), len(labels),
                     time.monotonic() - started)

    windows = WindowSet(
        features=np.concatenate(features) if features else np.zeros((0, N_FRAMES, N_FEATURES), np.float32),
        labels=np.asarray(labels, dtype=np.int32),
        speakers=np.asarray(speakers, dtype=str),
        clips=np.asarray(sources, dtype=np.int32),
        copies=np.asarray(copies, dtype=np.int32),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, **asdict(windows))
        partial.rename(cache)
    return windows
