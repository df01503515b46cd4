"""Late fusion of per-modality class probabilities: the methods, as pure numpy functions.

Every method has one signature, (scores by modality, weights by modality) -> Fused, and `fuse(method, ...)`
selects one by name. Scores are the calibrated probabilities the models serve; None marks a modality without
an answer, and then the other answers alone, whatever the method. With no scores at all the result is None:
a zero vector must never be read as the first label.

- weighted_sum: weighted mean of the probabilities (fixed weights: video 0.7, audio 0.3 by default).
- product_of_experts: weighted sum of the log-probabilities, renormalised; a sure modality outvotes an unsure one.
- confidence_weighted: weighted mean whose weights are each given weight times that modality's certainty in this
  answer (1 - normalised entropy), so the unsure modality counts less.
- learned_logistic: multinomial logistic regression on both log-probability vectors, fitted on validation pairs
  by training.fusion_eval; its parameters and the model versions they were fitted for are in learned_fusion.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

LOG_FLOOR = 1e-7  # the calibrated models clip at the same floor
LEARNED_FUSION_FILE = Path(__file__).resolve().parent / "learned_fusion.json"
MODALITIES = ("audio", "video")


@dataclass(frozen=True)
class Fused:
    probabilities: np.ndarray | None  # None when no modality produced scores
    weights: dict[str, float]  # each modality's share of the answer, summing to 1 (or all 0)


def check_weights(weights: Mapping[str, float], *, allow_all_zero: bool = False) -> None:
    """Fusion weights are finite numbers >= 0, and not all 0 unless `allow_all_zero`; raises ValueError naming
    the weight that is not. The one rule for the service's flags, each request's options and the fusion methods
    (which may be handed all-zero weights: then there is no answer)."""
    for name, weight in weights.items():
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"fusion weight {name} must be a finite number >= 0, got {weight}")
    if not allow_all_zero and not any(weight > 0 for weight in weights.values()):
        raise ValueError(f"at least one fusion weight of {' and '.join(weights)} must be > 0")


@dataclass(frozen=True)
class LogisticFusion:
    """softmax(coefficients[m] @ log p_m summed over modalities + intercept), as fitted on validation pairs."""

    coefficients: dict[str, np.ndarray]  # per modality [classes, classes]
    intercept: np.ndarray  # [classes]
    fitted_for: dict  # model versions and data it was fitted on

    @classmethod
    def from_json(cls, path: Path) -> LogisticFusion:
        try:
            data = json.loads(Path(path).read_text())
            return cls({m: np.asarray(data["coefficients"][m], dtype=np.float64) for m in MODALITIES},
                       np.asarray(data["intercept"], dtype=np.float64), data.get("fitted_for", {}))
        except (OSError, KeyError, ValueError) as error:
            raise ValueError(f"cannot read learned fusion parameters from {path}: {error}; "
                             "refit them with python -m training.fusion_eval") from error

    def to_json(self, path: Path) -> None:
        data = {"coefficients": {m: c.tolist() for m, c in self.coefficients.items()},
                "intercept": self.intercept.tolist(), "fitted_for": self.fitted_for}
        Path(path).write_text(json.dumps(data, indent=1) + "\n")

    def share(self, modality: str) -> float:
        """How much of the decision rests on a modality: its coefficients' share of their total magnitude."""
        sizes = {m: float(np.abs(c).sum()) for m, c in self.coefficients.items()}
        return sizes[modality] / sum(sizes.values())


FusionFunction = Callable[[Mapping[str, np.ndarray | None], Mapping[str, float]], Fused]


def weighted_sum(scores: Mapping[str, np.ndarray | None], weights: Mapping[str, float]) -> Fused:
    """Weighted mean of the modalities that produced scores, weights renormalised over them."""
    present, applied = _renormalised(scores, weights)
    if not present:
        return Fused(None, applied)
    fused = sum(applied[name] * probabilities for name, probabilities in present.items())
    return Fused(_normalised(fused), applied)


def product_of_experts(scores: Mapping[str, np.ndarray | None], weights: Mapping[str, float]) -> Fused:
    """softmax(sum of weight * log p): agreement multiplies, a near-zero probability vetoes."""
    present, applied = _renormalised(scores, weights)
    if not present:
        return Fused(None, applied)
    log_sum = sum(applied[name] * np.log(np.maximum(probabilities, LOG_FLOOR))
                  for name, probabilities in present.items())
    return Fused(_softmax(log_sum), applied)


def confidence_weighted(scores: Mapping[str, np.ndarray | None], weights: Mapping[str, float]) -> Fused:
    """Weighted mean with weights scaled by each modality's certainty (1 - entropy / log(classes))."""
    present, _ = _present(scores, weights)
    certain = {name: weights[name] * max(_certainty(p), 1e-6) for name, p in present.items()}
    return weighted_sum(scores, {name: certain.get(name, 0.0) for name in scores})


def learned_logistic(scores: Mapping[str, np.ndarray | None], weights: Mapping[str, float],
                     parameters: LogisticFusion | None = None) -> Fused:
    """The logistic regression fitted on validation pairs (default: learned_fusion.json's); one modality alone as is.

    Weights only say which modalities take part (a weight of 0 leaves one out); the fitted coefficients weigh them.
    """
    present, _ = _present(scores, weights)
    if len(present) < len(MODALITIES):
        return weighted_sum(scores, weights)
    parameters = parameters or learned_parameters()
    logits = parameters.intercept.copy()
    for name in MODALITIES:
        logits += parameters.coefficients[name] @ np.log(np.maximum(present[name], LOG_FLOOR))
    return Fused(_softmax(logits), {name: parameters.share(name) for name in MODALITIES})


@lru_cache(maxsize=1)
def learned_parameters() -> LogisticFusion:
    return LogisticFusion.from_json(LEARNED_FUSION_FILE)


FUSION_FUNCTIONS: dict[str, FusionFunction] = {
    "weighted_sum": weighted_sum,
    "product_of_experts": product_of_experts,
    "confidence_weighted": confidence_weighted,
    "learned_logistic": learned_logistic,
}


def fuse(method: str, scores: Mapping[str, np.ndarray | None], weights: Mapping[str, float]) -> Fused:
    """The answer of fusion `method` (a key of FUSION_FUNCTIONS)."""
    try:
        function = FUSION_FUNCTIONS[method]
    except KeyError:
        raise ValueError(f"unknown fusion method {method!r}; choose one of {', '.join(FUSION_FUNCTIONS)}") from None
    return function(scores, weights)


def _present(scores: Mapping[str, np.ndarray | None], weights: Mapping[str, float]
             ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Validated weights; the modalities with scores and a weight > 0 (as float64); all applied weights at 0."""
    check_weights(weights, allow_all_zero=True)
    present = {name: np.asarray(p, dtype=np.float64) for name, p in scores.items()
               if p is not None and weights.get(name, 0.0) > 0}
    return present, {name: 0.0 for name in scores}


def _renormalised(scores: Mapping[str, np.ndarray | None], weights: Mapping[str, float]
                  ) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """The modalities with scores, and the weights renormalised over them (the others at 0)."""
    present, applied = _present(scores, weights)
    total = sum(weights[name] for name in present)
    applied.update({name: weights[name] / total for name in present})
    return present, applied


def _certainty(probabilities: np.ndarray) -> float:
    p = np.maximum(probabilities / probabilities.sum(), 1e-12)
    return float(1.0 + np.sum(p * np.log(p)) / np.log(len(p)))


def _softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return _normalised(exp)


def _normalised(values: np.ndarray) -> np.ndarray:
    return (values / values.sum()).astype(np.float32)
