"""Weighted late fusion of per-modality class probabilities."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Fused:
    probabilities: np.ndarray | None  # None when no modality produced scores
    weights: dict[str, float]  # weights actually applied, summing to 1 (or all 0)


def check_weights(weights: Mapping[str, float], *, allow_all_zero: bool = False) -> None:
    """Fusion weights are finite numbers >= 0, and not all 0 unless `allow_all_zero`; raises ValueError naming
    the weight that is not. The one rule for the service's flags, each request's options and the fusion methods
    (which may be handed all-zero weights: then there is no answer)."""
    for name, weight in weights.items():
        if not np.isfinite(weight) or weight < 0:
            raise ValueError(f"fusion weight {name} must be a finite number >= 0, got {weight}")
    if not allow_all_zero and not any(weight > 0 for weight in weights.values()):
        raise ValueError(f"at least one fusion weight of {' and '.join(weights)} must be > 0")


def late_fusion(scores: dict[str, np.ndarray | None], weights: dict[str, float]) -> Fused:
    """Weighted mean of the modalities that produced scores.

    Weights are renormalised over those modalities, so when one is missing the other carries
    the answer alone. With no scores at all the result is None: a zero vector must never be
    read as the first label.
    """
    check_weights(weights, allow_all_zero=True)
    present = {name: p for name, p in scores.items() if p is not None and weights.get(name, 0.0) > 0}
    applied = {name: 0.0 for name in scores}
    if not present:
        return Fused(probabilities=None, weights=applied)
    total = sum(weights[name] for name in present)
    fused = np.zeros_like(next(iter(present.values())), dtype=np.float64)
    for name, probabilities in present.items():
        applied[name] = weights[name] / total
        fused += applied[name] * np.asarray(probabilities, dtype=np.float64)
    fused /= fused.sum()
    return Fused(probabilities=fused.astype(np.float32), weights=applied)
