"""Calibration of a model's probabilities: the calibrators, how they are fitted, and how calibration is measured.

A calibrator rescales the model's log-probabilities, softmax(scale * log p + bias), which is the same as
rescaling its logits because log p differs from the logits by one constant per sample. Temperature scaling is
one shared scale (1 / T) and no bias; vector scaling has a scale and a bias per class. Audio answers pool several
windows, so a calibrator is fitted on what the user sees: the mean of the calibrated window probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import softmax

ECE_BINS = 15
LOG_FLOOR = 1e-7  # log(0) would make a calibrator's output undefined; the served model clips the same way
VECTOR_L2 = 1e-3  # pulls vector scaling towards the identity, so a class seen rarely in the fitting half stays put
METHODS = ("temperature", "vector")


@dataclass(frozen=True)
class Calibration:
    """softmax(scale * log(max(p, LOG_FLOOR)) + bias), per class."""

    method: str
    scale: tuple[float, ...]
    bias: tuple[float, ...]

    @classmethod
    def identity(cls, n_classes: int) -> Calibration:
        return cls("none", (1.0,) * n_classes, (0.0,) * n_classes)

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """[..., classes] probabilities -> calibrated probabilities of the same shape (float32)."""
        logits = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), LOG_FLOOR))
        return softmax(logits * np.asarray(self.scale) + np.asarray(self.bias), axis=-1).astype(np.float32)

    def to_dict(self) -> dict:
        return {"method": self.method, "scale": list(self.scale), "bias": list(self.bias),
                "formula": "softmax(scale * log(max(p, %g)) + bias)" % LOG_FLOOR}

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        return cls(data["method"], tuple(float(v) for v in data["scale"]), tuple(float(v) for v in data["bias"]))


def pooled(calibration: Calibration, samples: Sequence[np.ndarray]) -> np.ndarray:
    """Per sample ([windows, classes] raw probabilities), the mean of its calibrated windows: [samples, classes]."""
    return np.stack([calibration.apply(windows).mean(axis=0) for windows in samples])


def fit(method: str, samples: Sequence[np.ndarray], labels: np.ndarray, weights: np.ndarray | None = None
        ) -> Calibration:
    """The calibrator of `method` minimising the (weighted) negative log-likelihood of the pooled answers."""
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    labels = np.asarray(labels)
    weights = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    n_classes = samples[0].shape[-1]
    logits = np.log(np.maximum(np.concatenate(samples).astype(np.float64), LOG_FLOOR))
    owner = np.repeat(np.arange(len(samples)), [len(s) for s in samples])
    counts = np.bincount(owner, minlength=len(samples))

    def unpack(params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if method == "temperature":
            return np.full(n_classes, np.exp(params[0])), np.zeros(n_classes)
        return np.exp(params[:n_classes]), params[n_classes:]

    def loss(params: np.ndarray) -> float:
        scale, bias = unpack(params)
        window_probabilities = softmax(logits * scale + bias, axis=1)
        true = window_probabilities[np.arange(len(owner)), labels[owner]]
        answer = np.bincount(owner, weights=true, minlength=len(samples)) / counts
        penalty = 0.0 if method == "temperature" else VECTOR_L2 * float(np.sum(params**2))
        return float(-np.average(np.log(np.maximum(answer, 1e-12)), weights=weights)) + penalty

    start = np.zeros(1 if method == "temperature" else 2 * n_classes)
    result = minimize(loss, start, method="L-BFGS-B")
    scale, bias = unpack(result.x)
    return Calibration(method, tuple(float(v) for v in scale), tuple(float(v) for v in bias))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| of the top answer over equal-width confidence bins, weighted by bin size."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    if len(labels) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(labels))


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    true = np.asarray(probabilities)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.mean(np.log(np.maximum(true, 1e-12)))) if len(labels) else 0.0


def calibration_metrics(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """ECE, NLL, accuracy and mean top-answer confidence of answered samples."""
    probabilities, labels = np.asarray(probabilities), np.asarray(labels)
    return {
        "n": int(len(labels)),
        "ece": expected_calibration_error(probabilities, labels),
        "nll": negative_log_likelihood(probabilities, labels),
        "accuracy": float(np.mean(probabilities.argmax(axis=1) == labels)) if len(labels) else 0.0,
        "mean_confidence": float(probabilities.max(axis=1).mean()) if len(labels) else 0.0,
    }


def ece_noise_floor(probabilities: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of a perfectly calibrated model with these answers: labels drawn from the answers themselves.

    With few samples, ECE is far from 0 even for perfect calibration; this is the figure to compare it with.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    cumulative = probabilities.cumsum(axis=1)
    eces = []
    for _ in range(draws):
        labels = (rng.random((len(probabilities), 1)) > cumulative).sum(axis=1)
        eces.append(expected_calibration_error(probabilities, np.minimum(labels, probabilities.shape[1] - 1)))
    return float(np.mean(eces))


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per non-empty bin: its confidence range, size, mean confidence and accuracy."""
    confidence = np.asarray(probabilities).max(axis=1)
    correct = np.asarray(probabilities).argmax(axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [{"low": b / bins, "high": (b + 1) / bins, "n": int((which == b).sum()),
             "confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean())}
            for b in range(bins) if (which == b).any()]


def plot_reliability(views: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, title: str) -> None:
    """One reliability diagram per view (e.g. "before", "after"), side by side, with ECE in each panel's title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(views), figsize=(4.2 * len(views), 4.4), squeeze=False)
    for axis, (name, (probabilities, labels)) in zip(axes[0], views.items()):
        rows = reliability_bins(probabilities, labels)
        axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
        axis.bar([r["low"] for r in rows], [r["accuracy"] for r in rows], width=1 / ECE_BINS, align="edge",
                 edgecolor="black", color="#4c72b0", label="accuracy")
        axis.plot([r["confidence"] for r in rows], [r["accuracy"] for r in rows], "o", color="#dd8452",
                  markersize=4, label="(mean confidence, accuracy)")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1)
        axis.set_xlabel("confidence of the top answer")
        axis.set_ylabel("accuracy")
        ece = expected_calibration_error(probabilities, labels)
        axis.set_title(f"{name}: ECE {ece:.3f}, n={len(labels)}")
        axis.legend(loc="upper left", fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)

