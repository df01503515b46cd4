"""Exponential smoothing of an emotion answer over time, the one definition shared by the service's streams
and by clients that smooth their own results (emotion-capture analyze).

It sits beside the generated stubs because it defines what a stream's smoothed fields mean, so it belongs to
the API rather than to either side of it; and because the service and the capture client both depend on this
package already, while neither may import the other. It needs numpy only.

Log-probabilities are smoothed, not probabilities: the smoothed answer is a weighted geometric mean of the
recent answers (a product of experts over time), so a confident new answer moves it faster than a hesitant one.
"""

from __future__ import annotations

import math

import numpy as np

from protos.emotion.v1.constants import AUDIO_WINDOW_SECONDS

# Chosen by measurement (docs/steady_results.md): on swaying faces with speech and pauses it cuts top-emotion
# changes per minute sevenfold, while a change of expression is named for good within 1.5 s (1.06 s).
DEFAULT_TIME_CONSTANT_S = 1.0
MAX_TIME_CONSTANT_S = 30.0
# After an audio window without an answer, nothing the last answer heard is still heard: the next answer starts
# afresh instead of being pulled towards a stale one.
RESTART_AFTER_GAP_S = AUDIO_WINDOW_SECONDS
# Probabilities are floored before the logarithm, so that one answer of exactly 0 cannot veto a label forever.
_FLOOR = 1e-6


class Smoother:
    """Smooths a sequence of probability vectors given at increasing times (in seconds, any origin)."""

    def __init__(self, time_constant_s: float = DEFAULT_TIME_CONSTANT_S, restart_after_gap_s: float = RESTART_AFTER_GAP_S):
        if not 0 <= time_constant_s <= MAX_TIME_CONSTANT_S:
            raise ValueError(f"smoothing time constant must be between 0 (none) and {MAX_TIME_CONSTANT_S:g} s, got {time_constant_s}")
        self.time_constant_s = float(time_constant_s)
        self.restart_after_gap_s = restart_after_gap_s
        self._log: np.ndarray | None = None
        self._time_s = 0.0

    def restart(self) -> None:
        """Forget the past: the next answer is taken as it is (another person, for example)."""
        self._log = None

    def update(self, time_s: float, probabilities: np.ndarray | None) -> np.ndarray | None:
        """The smoothed answer at `time_s`, given this moment's answer; None when there is no answer now.

        A moment without an answer leaves the past as it was; after RESTART_AFTER_GAP_S without one, the past
        is forgotten."""
        if probabilities is None:
            return None
        if self._log is not None and time_s < self._time_s:
            raise ValueError(f"smoothing needs increasing times, got {time_s} after {self._time_s}")
        log_p = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), _FLOOR))
        elapsed = time_s - self._time_s
        if self._log is None or self.time_constant_s == 0 or elapsed > self.restart_after_gap_s:
            self._log = log_p
        else:
            # The weight of the past decays as exp(-elapsed / tau), whatever the rate of the answers.
            self._log += (1.0 - math.exp(-elapsed / self.time_constant_s)) * (log_p - self._log)
        self._time_s = time_s
        smoothed = np.exp(self._log - self._log.max())
        return (smoothed / smoothed.sum()).astype(np.float32)
