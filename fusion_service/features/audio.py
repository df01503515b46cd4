"""Audio features shared by the live service and training.

Training and serving both call this module, so a model never sees features computed differently from the
ones it was trained on. Only numpy and scipy are used: librosa would add 285 MB to the service's image and
124 MB to its memory (docs/performance.md, "Filter banks"). The features and the mel and chroma filter banks
reproduce librosa's definitions, which the tests check against librosa itself, matrix by matrix.

Per 2-second window at 16 kHz: one STFT (n_fft 512, hop 256, periodic Hann, centred with zero padding)
gives 126 frames; each frame holds, in this order, MFCC 20, chroma 12, zero-crossing rate 1, RMS 1,
log-mel 64 = 98 values.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import scipy.fft
import scipy.signal
import scipy.sparse
from numpy.lib.stride_tricks import sliding_window_view

# The models hear audio at the API's rate, in windows of the API's length.
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ as SAMPLE_RATE
from protos.emotion.v1.constants import AUDIO_WINDOW_SECONDS as WINDOW_SECONDS

WINDOW_SAMPLES = 32000
N_FFT = 512
HOP_LENGTH = 256
N_MELS = 64
N_MFCC = 20
N_CHROMA = 12
N_FRAMES = 126
N_FEATURES = 98

# Where each feature sits among a frame's N_FEATURES values: the one declaration of the layout.
MFCC_COLUMNS = slice(0, N_MFCC)
CHROMA_COLUMNS = slice(MFCC_COLUMNS.stop, MFCC_COLUMNS.stop + N_CHROMA)  # pitch class C first, then C#, D, ... B
ZCR_COLUMN = CHROMA_COLUMNS.stop
RMS_COLUMN = ZCR_COLUMN + 1
LOG_MEL_COLUMNS = slice(RMS_COLUMN + 1, RMS_COLUMN + 1 + N_MELS)

FEATURE_NAMES: tuple[str, ...] = (
    *(f"mfcc_{i}" for i in range(N_MFCC)),
    *(f"chroma_{i}" for i in range(N_CHROMA)),
    "zcr",
    "rms",
    *(f"mel_{i}" for i in range(N_MELS)),
)

_N_BINS = N_FFT // 2 + 1
_POWER_FLOOR = 1e-10  # log-mel floor: 10*log10(1e-10) = -100 dB
_ZERO_THRESHOLD = 1e-10  # |sample| at or below this counts as zero (positive) for zero crossings

assert WINDOW_SAMPLES == round(SAMPLE_RATE * WINDOW_SECONDS)
assert N_FRAMES == 1 + WINDOW_SAMPLES // HOP_LENGTH
assert N_FFT == 2 * HOP_LENGTH and WINDOW_SAMPLES % HOP_LENGTH == 0  # the block framing relies on it
assert N_FEATURES == len(FEATURE_NAMES) == LOG_MEL_COLUMNS.stop


def _hz_to_slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's Auditory Toolbox mel scale: linear below 1 kHz, logarithmic above (librosa htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    mel = hz / (200.0 / 3)
    log_region = hz >= 1000.0
    mel[log_region] = 15.0 + np.log(hz[log_region] / 1000.0) / (np.log(6.4) / 27.0)
    return mel


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    hz = mel * (200.0 / 3)
    log_region = mel >= 15.0
    hz[log_region] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log_region] - 15.0))
    return hz


def mel_filterbank() -> np.ndarray:
    """[N_MELS, bins] triangular filters on the Slaney mel scale with Slaney area normalisation."""
    bin_hz = np.fft.rfftfreq(N_FFT, d=1.0 / SAMPLE_RATE)
    lowest_mel, highest_mel = _hz_to_slaney_mel(np.array([0.0, SAMPLE_RATE / 2]))
    edges_hz = _slaney_mel_to_hz(np.linspace(lowest_mel, highest_mel, N_MELS + 2))
    widths = np.diff(edges_hz)
    distance = np.subtract.outer(edges_hz, bin_hz)
    rising = -distance[:-2] / widths[:-1, np.newaxis]
    falling = distance[2:] / widths[1:, np.newaxis]
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, np.newaxis]


def chroma_filterbank() -> np.ndarray:
    """[N_CHROMA, bins] Gaussian pitch-class bumps, as librosa.filters.chroma with tuning 0 and its defaults
    (centre octave 5, octave width 2, L2-normalised columns, starting at C)."""
    bin_hz = np.linspace(0, SAMPLE_RATE, N_FFT, endpoint=False)[1:]
    bin_chroma = N_CHROMA * np.log2(bin_hz / (440.0 / 16))
    # The 0 Hz bin gets a made-up position 1.5 octaves below bin 1 (as in librosa / Dan Ellis' fft2chromamx).
    bin_chroma = np.concatenate(([bin_chroma[0] - 1.5 * N_CHROMA], bin_chroma))
    bin_width = np.concatenate((np.maximum(np.diff(bin_chroma), 1.0), [1.0]))
    half = np.round(N_CHROMA / 2)
    distance = np.subtract.outer(bin_chroma, np.arange(N_CHROMA, dtype=np.float64)).T
    distance = np.remainder(distance + half + 10 * N_CHROMA, N_CHROMA) - half
    weights = np.exp(-0.5 * (2 * distance / bin_width) ** 2)
    weights /= np.linalg.norm(weights, axis=0, keepdims=True)
    weights *= np.exp(-0.5 * ((bin_chroma / N_CHROMA - 5.0) / 2.0) ** 2)
    weights = np.roll(weights, -3, axis=0)  # rows start at C instead of A
    return np.ascontiguousarray(weights[:, :_N_BINS])


class _Buffers:
    """Scratch arrays for one window (~1.8 MB). Allocating them afresh on every call costs more than the
    arithmetic done in them: arrays this large come as new pages from the operating system each time."""

    def __init__(self) -> None:
        # The window with half a frame of zeros at each end (center=True): frame t is padded[t*hop : t*hop+n_fft].
        self.padded = np.zeros(WINDOW_SAMPLES + N_FFT)
        self.framed = sliding_window_view(self.padded, N_FFT)[::HOP_LENGTH]  # a view: [N_FRAMES, N_FFT]
        self.frames = np.empty((N_FRAMES, N_FFT))
        self.spectrum = np.empty((N_FRAMES, _N_BINS), dtype=np.complex128)
        self.power = np.empty((_N_BINS, N_FRAMES))  # librosa's [bins, frames] layout, for the filterbanks


class AudioFeatureExtractor:
    """Turns 2-second windows into [126, 98] feature matrices.

    Filterbanks, the DCT matrix and the STFT window are built once here; per window there is one STFT shared
    by all spectral features and a few matrix products. Scratch buffers are kept per thread, so one instance
    can be shared between threads.
    """

    def __init__(self) -> None:
        self._hann = scipy.signal.get_window("hann", N_FFT, fftbins=True)
        # Only 498 of the 16448 mel weights are non-zero: a sparse product is several times cheaper.
        self._mel_filterbank = scipy.sparse.csr_array(mel_filterbank())
        self._chroma_filterbank = chroma_filterbank()
        self._dct = scipy.fft.dct(np.eye(N_MELS), type=2, norm="ortho", axis=0)[:N_MFCC]
        self._per_thread = threading.local()

    def __call__(self, window: np.ndarray) -> np.ndarray:
        """Features of one window of WINDOW_SAMPLES samples -> float32 [N_FRAMES, N_FEATURES]."""
        window = np.asarray(window)
        if window.shape != (WINDOW_SAMPLES,):
            raise ValueError(
                f"expected one window of {WINDOW_SAMPLES} samples ({WINDOW_SECONDS} s at {SAMPLE_RATE} Hz), "
                f"got shape {window.shape}; resample() to {SAMPLE_RATE} Hz and cut with split_windows() first"
            )
        return self.batch(window[np.newaxis])[0]

    def batch(self, windows: np.ndarray) -> np.ndarray:
        """Features of [W, WINDOW_SAMPLES] windows -> float32 [W, N_FRAMES, N_FEATURES].

        Each window is one vectorised pass over all its frames. Stacking all windows into one pass was
        measured slower: its arrays no longer fit in the CPU cache.
        """
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(
                f"expected windows shaped [W, {WINDOW_SAMPLES}] ({WINDOW_SECONDS} s at {SAMPLE_RATE} Hz), "
                f"got shape {windows.shape}; resample() to {SAMPLE_RATE} Hz and cut with split_windows() first"
            )
        if not np.isfinite(windows).all():
            raise ValueError("audio contains NaN or infinite samples; check the capture/decoding path")

        buffers = self._buffers()
        features = np.empty((windows.shape[0], N_FRAMES, N_FEATURES), dtype=np.float32)
        for window, window_features in zip(windows, features):
            self._extract(window, window_features.T, buffers)
        return features

    def _buffers(self) -> _Buffers:
        if not hasattr(self._per_thread, "buffers"):
            self._per_thread.buffers = _Buffers()
        return self._per_thread.buffers

    def _extract(self, window: np.ndarray, features: np.ndarray, buffers: _Buffers) -> None:
        """Writes the [N_FEATURES, N_FRAMES] features of one window into `features`."""
        padded = buffers.padded
        padded[HOP_LENGTH:-HOP_LENGTH] = window
        self._spectral(buffers.framed, features, buffers.frames, buffers.spectrum, buffers.power)
        features[ZCR_COLUMN] = _zero_crossing_rate(window)
        features[RMS_COLUMN] = _rms(padded)

    def frames(self, samples: np.ndarray) -> np.ndarray:
        """Features of the frames wholly inside `samples` (float64, a whole number of hops, at least one frame):
        frame j is samples[j * HOP_LENGTH : j * HOP_LENGTH + N_FFT] -> float32 [frames, N_FEATURES]. Equal to the
        frames of a window that hold those samples away from its edges (StreamingFeatures relies on it)."""
        samples = np.asarray(samples, dtype=np.float64)
        if samples.ndim != 1 or len(samples) % HOP_LENGTH or len(samples) < N_FFT:
            raise ValueError(f"expected 1-D samples, a multiple of {HOP_LENGTH} and at least {N_FFT} long, got {samples.shape}")
        count = len(samples) // HOP_LENGTH - 1
        features = np.empty((N_FEATURES, count))
        self._spectral(
            sliding_window_view(samples, N_FFT)[::HOP_LENGTH], features, np.empty((count, N_FFT)),
            np.empty((count, _N_BINS), dtype=np.complex128), np.empty((_N_BINS, count)),
        )
        starts = np.arange(count) * HOP_LENGTH
        features[ZCR_COLUMN] = _crossings(samples, starts, starts + N_FFT) / N_FFT
        features[RMS_COLUMN] = _rms(samples)
        return features.T.astype(np.float32)

    def first_and_last_frames(self, window: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Of one window's features (as __call__ gives them), its frame 0 and its frames from `first` (1 or more) to
        the end -> float32 [N_FEATURES], [N_FRAMES - first, N_FEATURES]: what a stream's next window lacks, in one
        pass (frame 0 and the last frame see the window's zero padding; the frames between, its samples only)."""
        window = np.asarray(window, dtype=np.float64)
        half, zeros = N_FFT // 2, np.zeros(N_FFT // 2)
        # Frame t >= 1 spans window[(t - 1) * hop : (t + 1) * hop], the last one padded; row 1 joins the two parts.
        rows = self.frames(np.concatenate([zeros, window[:half], window[(first - 1) * HOP_LENGTH :], zeros]))
        # As in the whole window: the edge frames count the crossings of the window's own samples only.
        rows[[0, -1], ZCR_COLUMN] = _crossings(window, np.array([0, len(window) - half]),
                                               np.array([half, len(window)])) / N_FFT
        return rows[0], rows[2:]

    def _spectral(self, framed: np.ndarray, features: np.ndarray, frames: np.ndarray, spectrum: np.ndarray,
                  power: np.ndarray) -> None:
        """MFCC, chroma and log-mel of `framed` [n, N_FFT] into `features` [N_FEATURES, n], in the scratch arrays
        given (frames [n, N_FFT], spectrum [n, bins] complex, power [bins, n]).

        The STFT runs in float64: its rounding error is relative to the loudest bin of a frame, and float32
        would bury quiet bands under it.
        """
        np.multiply(framed, self._hann, out=frames)
        np.fft.rfft(frames, axis=-1, out=spectrum)
        # |X|^2 without temporaries: square real and imaginary parts in place, then add them up.
        parts = spectrum.view(np.float64)
        np.square(parts, out=parts)
        np.add(parts[:, 0::2], parts[:, 1::2], out=power.T)

        log_mel = 10.0 * np.log10(np.maximum(self._mel_filterbank @ power, _POWER_FLOOR))
        raw_chroma = self._chroma_filterbank @ power

        features[MFCC_COLUMNS] = self._dct @ log_mel
        features[CHROMA_COLUMNS] = raw_chroma / _chroma_norm(raw_chroma)
        features[LOG_MEL_COLUMNS] = log_mel


def _chroma_norm(raw_chroma: np.ndarray) -> np.ndarray:
    """Per-frame maximum (librosa's inf-norm); frames without energy keep norm 1 and so stay all zero."""
    peak = raw_chroma.max(axis=0)
    return np.where(peak < np.finfo(raw_chroma.dtype).tiny, 1.0, peak)


def _rms(padded: np.ndarray) -> np.ndarray:
    """RMS of the un-windowed frames of `padded` (librosa.feature.rms: of the zero-padded window). The hop is half
    a frame, so a frame's energy is that of its two half-frame blocks, each block's energy computed once."""
    blocks = padded.reshape(-1, HOP_LENGTH)
    block_energy = np.einsum("ij,ij->i", blocks, blocks)
    return np.sqrt((block_energy[:-1] + block_energy[1:]) / N_FFT)


def _zero_crossing_rate(window: np.ndarray) -> np.ndarray:
    """Fraction of sign changes per frame, as librosa.feature.zero_crossing_rate: samples within 1e-10 of
    zero count as positive, the changes between neighbours within a frame are counted and divided by the
    frame length. librosa pads by repeating the edge samples, which adds no changes."""
    # Frame t spans the window's samples t*hop - n_fft/2 up to t*hop + n_fft/2, cut at the window's edges.
    centres = np.arange(N_FRAMES) * HOP_LENGTH
    starts = np.maximum(centres - N_FFT // 2, 0)
    stops = np.minimum(centres + N_FFT // 2, WINDOW_SAMPLES)
    return _crossings(window, starts, stops) / N_FFT


def _crossings(samples: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Per frame, the sign changes between neighbouring samples that both lie in samples[start:stop]."""
    negative = samples < -_ZERO_THRESHOLD
    # before[i]: the changes from sample j to j+1 for all j < i.
    before = np.zeros(len(samples), dtype=np.int32)
    np.cumsum(negative[1:] != negative[:-1], out=before[1:])
    return (before[stops - 1] - before[starts]).astype(np.float64)


def resample(samples: np.ndarray, from_rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) along the last axis -> float32."""
    for name, rate in (("from_rate", from_rate), ("to_rate", to_rate)):
        if int(rate) != rate or rate <= 0:
            raise ValueError(f"{name} must be a positive whole number of Hz, got {rate!r}")
    from_rate, to_rate = int(from_rate), int(to_rate)
    samples = np.asarray(samples, dtype=np.float32)
    if from_rate == to_rate:
        return samples.copy()
    common = math.gcd(from_rate, to_rate)
    resampled = scipy.signal.resample_poly(samples, to_rate // common, from_rate // common, axis=-1)
    return resampled.astype(np.float32, copy=False)


def split_windows(
    samples: np.ndarray,
    window: int = WINDOW_SAMPLES,
    hop: int = WINDOW_SAMPLES // 2,
    max_windows: int | None = None,
) -> np.ndarray:
    """Cut 1-D audio into overlapping windows -> float32 [W, window].

    Audio shorter than a window becomes one window, zero-padded equally at both ends. Otherwise windows
    start at 0, hop, 2*hop, ... and the last one is aligned with the end of the audio, so the most recent
    samples (what a live speaker just said) are never dropped. max_windows keeps only the most recent ones.
    """
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected 1-D mono audio, got shape {samples.shape}; mix channels down first")
    if window <= 0 or hop <= 0:
        raise ValueError(f"window and hop must be positive, got window={window}, hop={hop}")
    if max_windows is not None and max_windows < 1:
        raise ValueError(f"max_windows must be at least 1 (or None for all), got {max_windows}")

    if samples.shape[0] < window:
        before = (window - samples.shape[0]) // 2
        return np.pad(samples, (before, window - samples.shape[0] - before))[np.newaxis]

    last_start = samples.shape[0] - window
    starts = list(range(0, last_start + 1, hop))
    if starts[-1] != last_start:
        starts.append(last_start)
    if max_windows is not None:
        starts = starts[-max_windows:]
    return sliding_window_view(samples, window)[starts]
