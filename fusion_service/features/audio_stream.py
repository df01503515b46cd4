"""A live stream's audio, and the audio model's input for its latest window, made as the audio arrives.

A stream's result is the answer on its last 2 s of audio, several times a second; consecutive windows share all
but their newest frames. So at the models' rate, the window ends on a hop of the feature frames, every frame that
lies wholly inside it is computed once and kept (the features of a frame depend on its samples alone), and the
two frames at its edges, which see its zero padding, are made afresh: the features equal those of the window
computed whole. Speech is judged frame by frame as it arrives (speech.StreamingSpeech). Until the first whole
window, and at other sample rates (resampled window by window), each window is prepared as a Fuse call's is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fusion_service.features.audio import (
    HOP_LENGTH, N_FEATURES, N_FRAMES, SAMPLE_RATE, WINDOW_SAMPLES, WINDOW_SECONDS, AudioFeatureExtractor,
)
from fusion_service.features.audio_input import AudioInput, prepare_audio
from fusion_service.features.speech import SpeechDetector, StreamingSpeech


class AudioRing:
    """The most recent `capacity` samples, in arrival order: written in place, so that a chunk costs its own
    length and not the window's."""

    def __init__(self, capacity: int):
        self._buffer = np.zeros(capacity, dtype=np.float32)
        self._end = 0  # where the next sample goes
        self.filled = 0
        self.total = 0  # samples ever received

    def append(self, samples: np.ndarray) -> None:
        self.total += len(samples)
        capacity = len(self._buffer)
        samples = samples[-capacity:]
        n = len(samples)
        first = min(n, capacity - self._end)
        self._buffer[self._end : self._end + first] = samples[:first]
        self._buffer[: n - first] = samples[first:]
        self._end = (self._end + n) % capacity
        self.filled = min(capacity, self.filled + n)

    def latest(self, count: int, end: int | None = None) -> np.ndarray:
        """A copy of the `count` samples before sample number `end` of the stream (default: the newest), or of as
        many of them as are held."""
        end = self.total if end is None else end
        behind = self.total - end
        if behind < 0 or behind > self.filled:
            raise ValueError(f"samples up to {end} are not held (received {self.total}, holding {self.filled})")
        count = min(count, self.filled - behind)
        stop = (self._end - behind) % len(self._buffer)
        start = (stop - count) % len(self._buffer)
        if start + count <= len(self._buffer):
            return self._buffer[start : start + count].copy()
        return np.concatenate([self._buffer[start:], self._buffer[:stop]])


@dataclass(frozen=True)
class Snapshot:
    """A window of a stream's audio, taken on the event loop while the stream goes on receiving."""

    samples: np.ndarray
    end: int  # the stream's sample number just after the window's last one


class StreamingAudio:
    """One stream's audio: `append` on the event loop, `snapshot` there too, then `prepared` (in a worker thread,
    one at a time) gives the model's input for that window."""

    def __init__(self, extractor: AudioFeatureExtractor, detector: SpeechDetector, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._window = round(WINDOW_SECONDS * sample_rate)
        self._ring = AudioRing(self._window + HOP_LENGTH)  # room to end a window on a hop
        self._extractor = extractor
        self._detector = detector
        self._speech = StreamingSpeech(detector, WINDOW_SAMPLES)
        self._heard = 0  # samples fed to the speech detector
        self._frames = np.zeros((0, N_FEATURES), dtype=np.float32)  # computed interior frames, oldest first
        self._first_block = 0  # the hop block where self._frames[0] starts

    @property
    def total(self) -> int:
        """Samples received."""
        return self._ring.total

    def append(self, samples: np.ndarray) -> None:
        self._ring.append(samples)

    def snapshot(self) -> Snapshot:
        """The latest window: at the models' rate, once whole, the one ending on the last whole hop."""
        if self._incremental():
            end = self.total - self.total % HOP_LENGTH
            return Snapshot(self._ring.latest(self._window, end), end)
        return Snapshot(self._ring.latest(self._window), self.total)

    def prepared(self, snapshot: Snapshot, max_seconds: float) -> AudioInput:
        """The audio model's input for a snapshot of this stream, taken after the last one prepared."""
        samples = snapshot.samples
        whole_hops = len(samples) == WINDOW_SAMPLES and snapshot.end % HOP_LENGTH == 0
        if self.sample_rate != SAMPLE_RATE or not whole_hops:
            return prepare_audio(samples, self.sample_rate, extractor=self._extractor, detector=self._detector,
                                 max_seconds=max_seconds)
        new = min(snapshot.end - self._heard, WINDOW_SAMPLES)
        if new > 0:
            self._speech.feed(samples[-new:])
            self._heard = snapshot.end
        if not self._speech.is_speech():
            return AudioInput(np.zeros((0, N_FRAMES, N_FEATURES), dtype=np.float32), windows=1, speech_windows=0)
        return AudioInput(self._features(samples, snapshot.end // HOP_LENGTH - N_FRAMES + 1)[np.newaxis],
                          windows=1, speech_windows=1)

    def _incremental(self) -> bool:
        return self.sample_rate == SAMPLE_RATE and self._ring.filled >= WINDOW_SAMPLES + self.total % HOP_LENGTH

    def _features(self, window: np.ndarray, first_block: int) -> np.ndarray:
        """[N_FRAMES, N_FEATURES] of the window that starts at hop block `first_block`: interior frames kept from
        earlier windows where they overlap, the rest computed."""
        overlap = first_block - self._first_block
        kept = self._frames[overlap:] if 0 <= overlap <= len(self._frames) else self._frames[:0]
        # Interior frame t of the window starts at block first_block + t - 1: the kept ones are frames 1..len(kept).
        frame_0, rest = self._extractor.first_and_last_frames(window, first=1 + len(kept))
        self._frames, self._first_block = np.concatenate([kept, rest[:-1]]), first_block
        return np.concatenate([frame_0[np.newaxis], self._frames, rest[-1:]])
