"""Calibration of a model's probabilities: the calibrators, how they are fitted, and how calibration is measured.

A calibrator rescales the model's log-probabilities, softmax(scale * log p + bias), which is the same as
rescaling its logits because log p differs from the logits by one constant per sample. Temperature scaling is
one shared scale (1 / T) and no bias; vector scaling has a scale and a bias per class. Audio answers pool several
windows, so a calibrator is fitted on what the user sees: the mean of the calibrated window probabilities.
Cross-fitting (cross_fit) measures a calibrator on every validation speaker/subject, each calibrated by a fit on
the others, so that calibrators are compared on speakers they never saw.
"""

from __future__ import annotations

from collections import Counter
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


def fit(method: str, samples: Sequence[np.ndarray], labels: np.ndarray, weights: np.ndarray | None = None,
        worst_of: np.ndarray | None = None) -> Calibration:
    """The calibrator of `method` minimising the (weighted) negative log-likelihood of the pooled answers.

    With `worst_of` (a group per sample, e.g. its corpus), the largest of the groups' weighted NLLs is minimised
    instead: a calibrator for the group it fits worst rather than for the average.
    """
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
        nll = -np.log(np.maximum(answer, 1e-12))
        if worst_of is None:
            return float(np.average(nll, weights=weights)) + penalty
        return max(float(np.average(nll[members], weights=weights[members])) for members in group_masks) + penalty

    group_masks = [] if worst_of is None else [np.asarray(worst_of) == g for g in np.unique(worst_of)]
    start = np.zeros(1 if method == "temperature" else 2 * n_classes)
    # the largest of several losses has kinks where the worst group changes, which a gradient method stalls on
    result = minimize(loss, start, method="L-BFGS-B" if worst_of is None else "Nelder-Mead")
    scale, bias = unpack(result.x)
    return Calibration(method, tuple(float(v) for v in scale), tuple(float(v) for v in bias))


@dataclass(frozen=True)
class CrossFitData:
    """Every validation sample of a model: its raw windows ([windows, classes]), label, corpus, speaker or
    subject (the unit cross-fitting holds out) and part of training.validation_halves."""

    samples: list[np.ndarray]
    labels: np.ndarray
    corpora: np.ndarray
    groups: np.ndarray
    parts: np.ndarray

    def subset(self, members: np.ndarray) -> CrossFitData:
        return CrossFitData([s for s, m in zip(self.samples, members) if m], self.labels[members],
                            self.corpora[members], self.groups[members], self.parts[members])


@dataclass(frozen=True)
class Candidate:
    """A calibrator's form (one of METHODS) and what its fit counts equally.

    weighting "corpus": every corpus the same total weight (training.calibrate's fit); "speaker": the same, and
    within a corpus every speaker/subject the same, so a speaker with many clips does not set the scale for its
    corpus; "worst corpus": the NLL of the corpus it fits worst is minimised (corpora weighted by speaker as well).
    """

    name: str
    method: str
    weighting: str


CANDIDATES = (
    Candidate("temperature", "temperature", "corpus"),
    Candidate("vector", "vector", "corpus"),
    Candidate("temperature, speakers equal", "temperature", "speaker"),
    Candidate("temperature, worst corpus", "temperature", "worst corpus"),
)
CHOICE_RULE = ("declared before any cross-fitted ECE was seen: the candidate with the lowest cross-fitted NLL, "
               "averaged over corpora (each corpus counts the same, whatever its size); ECE is reported, not chosen on")


def equal_weights(keys: np.ndarray, within: np.ndarray | None = None) -> np.ndarray:
    """Per sample, weights giving every distinct key the same total; with `within`, every distinct `within`
    the same total and, inside it, each of its keys the same share."""
    _, inverse, counts = np.unique(np.asarray(keys), return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    if within is None:
        return weights
    within = np.asarray(within).tolist()
    keys_in = Counter(outer for _, outer in set(zip(np.asarray(keys).tolist(), within)))
    return weights / np.array([keys_in[outer] for outer in within])


def fit_candidate(candidate: Candidate, data: CrossFitData) -> Calibration:
    """`candidate`'s calibrator fitted on all of `data`."""
    if candidate.weighting == "corpus":
        return fit(candidate.method, data.samples, data.labels, equal_weights(data.corpora))
    by_speaker = equal_weights(data.groups, within=data.corpora)
    if candidate.weighting == "speaker":
        return fit(candidate.method, data.samples, data.labels, by_speaker)
    if candidate.weighting == "worst corpus":
        return fit(candidate.method, data.samples, data.labels, by_speaker, worst_of=data.corpora)
    raise ValueError(f"unknown weighting {candidate.weighting!r}; use corpus, speaker or worst corpus")


def cross_fit(candidate: Candidate, data: CrossFitData) -> np.ndarray:
    """Pooled calibrated answers [samples, classes], each sample's from a calibrator fitted on the other
    speakers/subjects of all corpora (leave one speaker out)."""
    answers = np.zeros((len(data.labels), data.samples[0].shape[-1]), dtype=np.float32)
    for group in dict.fromkeys(data.groups.tolist()):
        held = data.groups == group
        calibration = fit_candidate(candidate, data.subset(~held))
        answers[held] = pooled(calibration, data.subset(held).samples)
    return answers


def per_corpus_figures(answers: np.ndarray, data: CrossFitData, by: str = "corpora") -> dict[str, dict]:
    """calibration_metrics, the ECE noise floor and ece_p of `answers`, per corpus (by="groups": per
    speaker/subject). ece_p: the share of perfectly calibrated draws (ece_null) with an ECE at least as large, so
    a small ece_p is miscalibration that the sample's size does not explain."""
    keys = getattr(data, by)
    figures = {}
    for key in dict.fromkeys(keys.tolist()):
        members = keys == key
        metrics = calibration_metrics(answers[members], data.labels[members])
        null = ece_null(answers[members])
        figures[key] = {**metrics, "ece_noise_floor": float(null.mean()),
                        "ece_p": float(np.mean(null >= metrics["ece"]))}
    return figures


def compare_cross_fitted(data: CrossFitData, candidates: Sequence[Candidate] = CANDIDATES) -> dict:
    """Per corpus, the raw answers' figures and each candidate's cross-fitted ones, and the candidate that
    CHOICE_RULE picks."""
    raw = pooled(Calibration.identity(data.samples[0].shape[-1]), data.samples)
    result = {"rule": CHOICE_RULE, "before": per_corpus_figures(raw, data),
              "before_per_speaker": per_corpus_figures(raw, data, by="groups"), "candidates": {}}
    for candidate in candidates:
        answers = cross_fit(candidate, data)
        per_corpus = per_corpus_figures(answers, data)
        result["candidates"][candidate.name] = {
            "method": candidate.method, "weighting": candidate.weighting, "per_corpus": per_corpus,
            "per_speaker": per_corpus_figures(answers, data, by="groups"),
            "mean_corpus_nll": float(np.mean([f["nll"] for f in per_corpus.values()])),
            "fitted_on_all": fit_candidate(candidate, data).to_dict()}
    result["chosen"] = min(result["candidates"], key=lambda name: result["candidates"][name]["mean_corpus_nll"])
    return result


def cross_fit_table(result: dict) -> str:
    """The comparison as a Markdown table: per corpus and candidate, figures before and cross-fitted after."""
    lines = ["| corpus | calibrator | n | accuracy | ECE before | after | ECE floor before | after | ECE p before | "
             "after | NLL before | after | mean confidence before | after |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for corpus, before in result["before"].items():
        for name, candidate in result["candidates"].items():
            after = candidate["per_corpus"][corpus]
            lines.append(f"| {corpus} | {name} | {before['n']} | {after['accuracy']:.3f} | {before['ece']:.3f} | "
                         f"{after['ece']:.3f} | {before['ece_noise_floor']:.3f} | {after['ece_noise_floor']:.3f} | "
                         f"{before['ece_p']:.3f} | {after['ece_p']:.3f} | {before['nll']:.3f} | {after['nll']:.3f} | "
                         f"{before['mean_confidence']:.3f} | {after['mean_confidence']:.3f} |")
    lines += ["", "| calibrator | mean over corpora of cross-fitted NLL | fitted on all validation samples |",
              "|---|---:|---|"]
    for name, candidate in result["candidates"].items():
        fitted = candidate["fitted_on_all"]
        chosen = " (chosen)" if name == result["chosen"] else ""
        lines.append(f"| {name}{chosen} | {candidate['mean_corpus_nll']:.4f} | scale "
                     + ", ".join(f"{v:.3f}" for v in fitted["scale"]) + "; bias "
                     + ", ".join(f"{v:.3f}" for v in fitted["bias"]) + " |")
    chosen = result["candidates"][result["chosen"]]["per_speaker"]
    lines += ["", f"Per speaker/subject, {result['chosen']} cross-fitted:", "",
              "| speaker/subject | n | accuracy | mean confidence before | after | ECE after | ECE floor after |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for group, after in chosen.items():
        before = result["before_per_speaker"][group]
        lines.append(f"| {group} | {after['n']} | {after['accuracy']:.3f} | {before['mean_confidence']:.3f} | "
                     f"{after['mean_confidence']:.3f} | {after['ece']:.3f} | {after['ece_noise_floor']:.3f} |")
    return "\n".join(lines)


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


def ece_null(probabilities: np.ndarray, draws: int = 200, seed: int = 0) -> np.ndarray:
    """ECEs of a perfectly calibrated model with these answers: labels drawn from the answers themselves."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    cumulative = probabilities.cumsum(axis=1)
    eces = []
    for _ in range(draws):
        labels = (rng.random((len(probabilities), 1)) > cumulative).sum(axis=1)
        eces.append(expected_calibration_error(probabilities, np.minimum(labels, probabilities.shape[1] - 1)))
    return np.array(eces)


def ece_noise_floor(probabilities: np.ndarray, draws: int = 200, seed: int = 0) -> float:
    """Mean ECE of a perfectly calibrated model with these answers: labels drawn from the answers themselves.

    With few samples, ECE is far from 0 even for perfect calibration; this is the figure to compare it with.
    """
    return float(np.mean(ece_null(probabilities, draws, seed)))


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

