"""Metrics and reports shared by every model: seven-class view and the original system's four-class view.

A sample with no prediction (no speech or no face found) counts as an error and lands in the "none" column,
so a model cannot look better by refusing to answer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from protos.emotion.v1.constants import LABELS
from training.calibration import ECE_BINS, calibration_metrics
from training.labels import FOUR_CLASS_LABELS

NO_PREDICTION = "none"


def evaluate_predictions(
    true_labels: Sequence[str],
    probabilities: Sequence[np.ndarray | None],
    labels: Sequence[str] = LABELS,
) -> dict:
    """Accuracy, UAR, per-class recall and confusion, over all labels and under "seed4" over the four classes;
    under "calibration", ECE, NLL and mean confidence of the answers given (seven classes)."""
    if len(true_labels) != len(probabilities):
        raise ValueError(f"{len(true_labels)} true labels but {len(probabilities)} predictions")
    labels = list(labels)
    unknown = sorted(set(true_labels) - set(labels))
    if unknown:
        raise ValueError(f"true labels {unknown} are not in the label list {labels}")
    report = _metrics(true_labels, probabilities, labels)

    four_columns = [labels.index(label) for label in FOUR_CLASS_LABELS]
    four_true: list[str] = []
    four_probabilities: list[np.ndarray | None] = []
    for true, probs in zip(true_labels, probabilities):
        if true in FOUR_CLASS_LABELS:
            four_true.append(true)
            four_probabilities.append(None if probs is None else np.asarray(probs)[four_columns])
    report["seed4"] = _metrics(four_true, four_probabilities, list(FOUR_CLASS_LABELS))
    answered = [(labels.index(true), probs) for true, probs in zip(true_labels, probabilities) if probs is not None]
    report["calibration"] = calibration_metrics(
        np.array([probs for _, probs in answered], dtype=np.float64).reshape(len(answered), len(labels)),
        np.array([index for index, _ in answered], dtype=int),
    )
    return report


def _metrics(true_labels: Sequence[str], probabilities: Sequence[np.ndarray | None], labels: list[str]) -> dict:
    columns = labels + [NO_PREDICTION]
    confusion = np.zeros((len(labels), len(columns)), dtype=int)
    for true, probs in zip(true_labels, probabilities):
        predicted = len(labels) if probs is None else int(np.argmax(np.asarray(probs)))
        confusion[labels.index(true), predicted] += 1
    n = int(confusion.sum())
    correct = int(np.trace(confusion[:, : len(labels)]))
    support = confusion.sum(axis=1)
    per_class_recall = {
        label: (float(confusion[i, i] / support[i]) if support[i] else None) for i, label in enumerate(labels)
    }
    present = [recall for recall in per_class_recall.values() if recall is not None]
    return {
        "n": n,
        "accuracy": float(correct / n) if n else 0.0,
        "uar": float(np.mean(present)) if present else 0.0,
        "per_class_recall": per_class_recall,
        "support": {label: int(support[i]) for i, label in enumerate(labels)},
        "confusion": confusion.tolist(),
        "confusion_columns": columns,
        "labels": labels,
    }


def write_report(report: dict, out_dir: Path, title: str, extra: dict | None = None) -> None:
    """report.json, report.md (tables) and confusion_7.png / confusion_4.png in out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    document = dict(report)
    if extra:
        document["extra"] = extra
    (out_dir / "report.json").write_text(json.dumps(document, indent=2) + "\n")
    (out_dir / "report.md").write_text(format_markdown(report, title, extra))
    plot_confusion(report, out_dir / "confusion_7.png", f"{title}: seven classes")
    plot_confusion(report["seed4"], out_dir / "confusion_4.png", f"{title}: four classes")


def format_text(report: dict) -> str:
    """Plain-text summary for a terminal: both views."""
    c = report["calibration"]
    parts = [f"calibration of the {c['n']} answers: ECE ({ECE_BINS} bins) {c['ece']:.3f}  NLL {c['nll']:.3f}  "
             f"mean confidence {c['mean_confidence']:.3f}  accuracy {c['accuracy']:.3f}", ""]
    for heading, view in (("seven classes", report), ("four classes (angry, fear, happy, sad)", report["seed4"])):
        parts.append(f"== {heading} ==")
        parts.append(f"n {view['n']}  accuracy {view['accuracy']:.3f}  UAR {view['uar']:.3f}")
        parts.append("recall  " + "  ".join(f"{k} {_fmt(v)}" for k, v in view["per_class_recall"].items()))
        width = max(len(c) for c in view["confusion_columns"])
        corner = "true \\ predicted"
        parts.append(corner + "  " + " ".join(c.rjust(width) for c in view["confusion_columns"]))
        for label, row in zip(view["labels"], view["confusion"]):
            parts.append(label.ljust(len(corner) + 2) + " ".join(str(v).rjust(width) for v in row))
        parts.append("")
    return "\n".join(parts)


def format_markdown(report: dict, title: str, extra: dict | None = None) -> str:
    lines = [f"# {title}", ""]
    for heading, view, image in (
        ("Seven classes", report, "confusion_7.png"),
        ("Four classes (angry, fear, happy, sad)", report["seed4"], "confusion_4.png"),
    ):
        lines += [f"## {heading}", "", f"n = {view['n']}, accuracy = {view['accuracy']:.3f}, "
                  f"UAR = {view['uar']:.3f}", ""]
        lines += ["| class | support | recall |", "|---|---:|---:|"]
        for label in view["labels"]:
            lines.append(f"| {label} | {view['support'][label]} | {_fmt(view['per_class_recall'][label])} |")
        lines += ["", "Confusion (rows true, columns predicted):", ""]
        lines.append("| true \\ predicted | " + " | ".join(view["confusion_columns"]) + " |")
        lines.append("|---|" + "---:|" * len(view["confusion_columns"]))
        for label, row in zip(view["labels"], view["confusion"]):
            lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
        lines += ["", f"![{heading}]({image})", ""]
    if extra:
        lines += _extra_markdown(extra)
    return "\n".join(lines)


def _extra_markdown(extra: dict) -> list[str]:
    """Tables of named rows of figures (per speaker group, per noise level ...) first, then the rest as JSON."""
    lines: list[str] = []
    rest = {}
    for name, value in extra.items():
        rows = value if isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()) else None
        if rows is None or not all(isinstance(x, (int, float, str)) for row in rows.values() for x in row.values()):
            rest[name] = value
            continue
        columns = list(dict.fromkeys(column for row in rows.values() for column in row))
        lines += [f"## {name.replace('_', ' ')}", "", "| | " + " | ".join(columns) + " |",
                  "|---|" + "---:|" * len(columns)]
        for row_name, row in rows.items():
            cells = [f"{row[c]:.3f}" if isinstance(row.get(c), float) else str(row.get(c, "")) for c in columns]
            lines.append(f"| {row_name} | " + " | ".join(cells) + " |")
        lines.append("")
    if rest:
        lines += ["## Details", "", "```json", json.dumps(rest, indent=2), "```", ""]
    return lines


def plot_confusion(view: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(view["confusion"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    figure, axes = plt.subplots(figsize=(1.1 * matrix.shape[1] + 2, 0.9 * matrix.shape[0] + 1.5))
    axes.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(matrix.shape[1]), view["confusion_columns"], rotation=45, ha="right")
    axes.set_yticks(range(matrix.shape[0]), view["labels"])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            colour = "white" if normalised[i, j] > 0.5 else "black"
            axes.text(j, i, f"{int(matrix[i, j])}\n{normalised[i, j]:.2f}", ha="center", va="center",
                      fontsize=8, color=colour)
    axes.set_title(f"{title}\nn={view['n']} acc={view['accuracy']:.3f} UAR={view['uar']:.3f}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
