"""Speech activity detection: the emotion model is only meaningful on speech, never on silence or noise.

webrtcvad alone is not enough: measured on 2-s windows, it calls steady white or pink noise and mains hum at
-30..-20 dBFS speech in every mode. Two level checks are therefore added per 30 ms frame, both on the
speech band (above 80 Hz, so hum and the rumble of fan-like noise count less):

- an absolute floor: a frame quieter than ``min_level_dbfs`` is never speech (silence, very quiet noise,
  someone talking far away);
- a rise above the background: a frame must be ``min_rise_db`` louder than the background level of the
  audio it came with (a low percentile of all its frame levels). Speech comes in syllables whose level rises
  well above the pauses between them; steady noise stays at its own level.

Limits, measured: the level checks do most of the work. Sounds that come and go like syllables but are not
speech (beeps, clicks, music, bursts of noise) pass, and webrtcvad does not reject them either. The
background is estimated from the audio passed in, so every call is independent of the previous ones; audio
that is silence followed by loud noise starting mid-window can therefore pass the rise check.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import webrtcvad

from fusion_service.features.audio import SAMPLE_RATE

FRAME_SECONDS = 0.03  # webrtcvad accepts 10, 20 or 30 ms; the longest gives the steadiest level estimate
FRAME_SAMPLES = int(SAMPLE_RATE * FRAME_SECONDS)
_SILENCE_DB = -120.0  # level reported for all-zero frames instead of -inf


class SpeechDetector:
    """Finds speech frames in 16 kHz float32 mono audio in [-1, 1].

    Defaults, tuned on espeak-ng speech and synthetic noise (see tests/features/test_speech.py):
    aggressiveness 2: modes 2 and 3 did equally well once the level checks were added; 2 keeps more of
        quiet speech.
    min_level_dbfs -60: RMS relative to full scale (RMS 1.0 = 0 dBFS). Speech into a desktop microphone
        sits around -35..-15 dBFS, but soft voices go far lower: at -50, 12 of the 240 clips of the held-out
        RAVDESS actors (actor 20 speaking calm and sad lines, loudest frames -54..-46 dBFS) had no speech at
        all, and the model classifies them better than chance once heard (seven-class UAR 0.582 -> 0.606).
        Steady noise at any level is left to the rise check; the floor only keeps faint voices out.
    min_rise_db 6 and background_percentile 10: 30 ms frames of steady noise vary by a few dB, syllables
        rise 10..30 dB above the pauses. With 6 dB, white, pink and brown noise and hum at -40..-10 dBFS
        gave at most 0.03 s of speech per 2-s window, and speech in pink noise at 10 dB SNR kept >= 0.8 s.
    min_speech_seconds 0.3: about two syllables.
    highpass_hz 80: below the voice; without it, brown noise reached 0.27 s per window.
    """

    def __init__(
        self,
        *,
        aggressiveness: int = 2,
        min_level_dbfs: float = -60.0,
        min_rise_db: float = 6.0,
        background_percentile: float = 10.0,
        min_speech_seconds: float = 0.3,
        highpass_hz: float = 80.0,
    ) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError(f"aggressiveness must be 0, 1, 2 or 3 (webrtcvad modes), got {aggressiveness!r}")
        if not 0.0 <= background_percentile <= 100.0:
            raise ValueError(f"background_percentile must be within 0..100, got {background_percentile}")
        if min_speech_seconds < 0:
            raise ValueError(f"min_speech_seconds must not be negative, got {min_speech_seconds}")
        if not 0.0 < highpass_hz < SAMPLE_RATE / 2:
            raise ValueError(f"highpass_hz must be between 0 and {SAMPLE_RATE / 2} Hz, got {highpass_hz}")
        self.aggressiveness = aggressiveness
        self.min_level_dbfs = min_level_dbfs
        self.min_rise_db = min_rise_db
        self.background_percentile = background_percentile
        self.min_speech_seconds = min_speech_seconds
        self.highpass_hz = highpass_hz
        self._highpass = scipy.signal.butter(2, highpass_hz, btype="highpass", fs=SAMPLE_RATE, output="sos")
        self._highpass_initial_state = scipy.signal.sosfilt_zi(self._highpass)

    def settings(self) -> dict[str, float]:
        """The values that decide what counts as speech (for cache keys and reports)."""
        return {"aggressiveness": self.aggressiveness, "min_level_dbfs": self.min_level_dbfs,
                "min_rise_db": self.min_rise_db, "background_percentile": self.background_percentile,
                "min_speech_seconds": self.min_speech_seconds, "highpass_hz": self.highpass_hz}

    def speech_frames(self, samples: np.ndarray) -> np.ndarray:
        """One bool per whole 30 ms frame of samples: True where the frame is speech."""
        samples = np.asarray(samples, dtype=np.float32)
        if samples.ndim != 1:
            raise ValueError(f"expected 1-D mono audio at {SAMPLE_RATE} Hz, got shape {samples.shape}")
        if not np.isfinite(samples).all():
            raise ValueError("audio contains NaN or infinite samples; check the capture/decoding path")
        frame_count = samples.shape[0] // FRAME_SAMPLES
        if frame_count == 0:
            return np.zeros(0, dtype=bool)
        samples = samples[: frame_count * FRAME_SAMPLES]

        # Starting the filter in its steady state for the first sample avoids a step transient on DC offsets.
        levels, _ = self.speech_band_levels(samples, self.steady_filter_state(samples[0]))
        # A fresh webrtcvad per call (it adapts to what it has heard), fed every frame in order.
        return self.judged(levels, voiced_frames(webrtcvad.Vad(self.aggressiveness), samples))

    def judged(self, levels: np.ndarray, voiced: np.ndarray) -> np.ndarray:
        """Speech frames among frames of these levels (dBFS) and webrtcvad verdicts: voiced, loud enough and above
        the background of these frames."""
        loud_enough = levels >= self.min_level_dbfs
        above_background = levels >= percentile(levels, self.background_percentile) + self.min_rise_db
        return voiced & loud_enough & above_background

    def speech_seconds(self, samples: np.ndarray) -> float:
        """Seconds of speech in samples (a multiple of 30 ms)."""
        return float(np.count_nonzero(self.speech_frames(samples)) * FRAME_SECONDS)

    def is_speech(self, samples: np.ndarray) -> bool:
        """True when at least min_speech_seconds of samples is speech."""
        return self.enough(self.speech_frames(samples))

    def enough(self, speech_frames: np.ndarray) -> bool:
        """Whether these speech frames make at least min_speech_seconds."""
        # Frame counts times 0.03 s are not exact in binary floating point: allow for the rounding.
        return np.count_nonzero(speech_frames) * FRAME_SECONDS >= self.min_speech_seconds - 1e-9

    def steady_filter_state(self, first_sample: float) -> np.ndarray:
        """The high-pass filter's state as if `first_sample` had always been the input."""
        return self._highpass_initial_state * first_sample

    def speech_band_levels(self, samples: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RMS level in dBFS of each whole frame of `samples` after the high-pass filter, started in `state`; and
        the filter's state after them."""
        filtered, state = scipy.signal.sosfilt(self._highpass, samples.astype(np.float64), zi=state)
        mean_square = np.mean(np.square(filtered.reshape(-1, FRAME_SAMPLES)), axis=1)
        with np.errstate(divide="ignore"):
            return np.maximum(10.0 * np.log10(mean_square), _SILENCE_DB), state


def percentile(values: np.ndarray, q: float) -> float:
    """np.percentile(values, q) by its default (linear) method, without np.percentile's per-call overhead, which
    for a window's 66 levels costs more than the rest of the level checks together."""
    ordered = np.sort(values)
    position = q / 100.0 * (len(ordered) - 1)
    below = int(position)
    above = min(below + 1, len(ordered) - 1)
    return float(ordered[below] + (ordered[above] - ordered[below]) * (position - below))


def voiced_frames(vad: webrtcvad.Vad, samples: np.ndarray) -> np.ndarray:
    """webrtcvad's verdict on each whole frame of samples, fed in order (it adapts to what it has heard)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16).reshape(-1, FRAME_SAMPLES)
    return np.array([vad.is_speech(frame.tobytes(), SAMPLE_RATE) for frame in pcm], dtype=bool)


class StreamingSpeech:
    """SpeechDetector's verdict on the latest window of a stream, each 30 ms frame filtered, measured and heard by
    webrtcvad once, as the audio arrives, instead of every frame of the window again for every window.

    The background is the window's, as for a window judged alone. Unlike there, the high-pass filter and webrtcvad
    carry their state along the stream (webrtcvad is made to be fed so), so a verdict can differ from
    SpeechDetector.is_speech on the same window where speech starts or ends at the window's edge.
    """

    def __init__(self, detector: SpeechDetector, window_samples: int) -> None:
        self._detector = detector
        self._vad = webrtcvad.Vad(detector.aggressiveness)
        self._frames_per_window = window_samples // FRAME_SAMPLES
        self._state: np.ndarray | None = None  # the high-pass filter's, after the last whole frame
        self._rest = np.zeros(0, dtype=np.float32)  # samples after the last whole frame
        self._levels = np.zeros(0)
        self._voiced = np.zeros(0, dtype=bool)

    def feed(self, samples: np.ndarray) -> None:
        """The stream's next samples (16 kHz float32 in [-1, 1])."""
        samples = np.concatenate([self._rest, np.asarray(samples, dtype=np.float32)])
        whole = len(samples) // FRAME_SAMPLES * FRAME_SAMPLES
        self._rest = samples[whole:]
        if not whole:
            return
        samples = samples[:whole]
        if self._state is None:
            self._state = self._detector.steady_filter_state(samples[0])
        levels, self._state = self._detector.speech_band_levels(samples, self._state)
        keep = self._frames_per_window
        self._levels = np.concatenate([self._levels, levels])[-keep:]
        self._voiced = np.concatenate([self._voiced, voiced_frames(self._vad, samples)])[-keep:]

    def is_speech(self) -> bool:
        """Whether the last window's worth of whole frames fed (a window's length / 30 ms of them, as a window judged
        alone has) hold min_speech_seconds of speech."""
        return len(self._levels) > 0 and self._detector.enough(self._detector.judged(self._levels, self._voiced))
