"""A recording's per-window results and the files they are written to: CSV, JSON and a PNG chart."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from capture_client.palette import EMOTION_RGB
from capture_client.results import probabilities, status_name
from protos.emotion.v1.smoothing import Smoother
from protos.emotion.v1.uncertainty import confidence, uncertainty_reason
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS

OUTPUTS = ("csv", "json", "png")
_MODALITIES = (("fused", "fused"), ("video", "face"), ("audio", "voice"))


@dataclass(frozen=True)
class WindowResult:
    """One analysed moment: the audio window ending at `time_s` and the frame on screen at `time_s`."""

    time_s: float
    audio_status: str
    video_status: str
    faces: int
    audio: np.ndarray | None  # probabilities in LABELS order, None unless the modality was USED
    video: np.ndarray | None
    fused: np.ndarray | None  # the answer: smoothed over time when the timeline is smoothed
    top_emotion: str
    top_probability: float
    fusion_method: str  # e.g. "weighted_sum"; empty without a fused answer or from a service too old to say
    uncertain: bool
    uncertainty_reason: str  # LOW_CONFIDENCE or MODALITIES_DISAGREE when uncertain, else empty
    uncertain_below: float  # the service's threshold: a smoothed answer is judged by it too
    instant_fused: np.ndarray | None  # this window's own answer, before any smoothing
    instant_top_emotion: str
    instant_top_probability: float

    @classmethod
    def from_response(cls, time_s: float, response: pb.FuseResponse) -> "WindowResult":
        fused = probabilities(response.fused)
        return cls(
            time_s=time_s,
            audio_status=status_name(response.audio.status),
            video_status=status_name(response.video.status),
            faces=len(response.faces),
            audio=probabilities(response.audio.scores),
            video=probabilities(response.video.scores),
            fused=fused,
            top_emotion=response.top_emotion,
            top_probability=response.top_probability,
            fusion_method=pb.FusionMethod.Name(response.fusion_method).lower() if response.fusion_method else "",
            uncertain=response.uncertain,
            uncertainty_reason=pb.UncertaintyReason.Name(response.uncertainty_reason) if response.uncertain else "",
            uncertain_below=response.uncertain_below,
            instant_fused=fused,
            instant_top_emotion=response.top_emotion,
            instant_top_probability=response.top_probability,
        )

    @property
    def audio_confidence(self) -> float:
        return confidence(self.audio)

    @property
    def video_confidence(self) -> float:
        return confidence(self.video)


def smooth(windows: list[WindowResult], time_constant_s: float) -> list[WindowResult]:
    """The timeline with each answer smoothed over the windows before it, as a live stream smooths its results
    (protos/emotion/v1/smoothing.py); the instant answers stay. Uncertainty is judged again on the smoothed answer,
    by the service's own threshold; disagreement between the modalities is the window's own."""
    smoother = Smoother(time_constant_s)
    smoothed_windows = []
    for w in windows:
        smoothed = smoother.update(w.time_s, w.instant_fused)
        if smoothed is None:
            smoothed_windows.append(w)
            continue
        top = int(np.argmax(smoothed))
        reason = uncertainty_reason(confidence(smoothed), w.uncertainty_reason == "MODALITIES_DISAGREE", w.uncertain_below)
        smoothed_windows.append(replace(
            w, fused=smoothed, top_emotion=LABELS[top], top_probability=float(smoothed[top]),
            uncertain=reason != pb.UNCERTAINTY_REASON_UNSPECIFIED,
            uncertainty_reason=pb.UncertaintyReason.Name(reason) if reason != pb.UNCERTAINTY_REASON_UNSPECIFIED else "",
        ))
    return smoothed_windows


def csv_columns() -> list[str]:
    scores = [f"{modality}_{label}" for modality, _ in _MODALITIES for label in LABELS]
    instant = [f"instant_fused_{label}" for label in LABELS]
    return [
        "time_s", "audio_status", "video_status", "faces", "top_emotion", "top_probability", "uncertain",
        "uncertainty_reason", "fusion_method", "audio_confidence", "video_confidence", *scores,
        "instant_top_emotion", "instant_top_probability", *instant,
    ]


def write_csv(windows: list[WindowResult], path: Path) -> None:
    """One row per window; cells stay empty where there is no value (no scores, no answer)."""

    def number(value: float, present: bool) -> str:
        return f"{value:.4f}" if present else ""

    def cells(scores: np.ndarray | None) -> list[str]:
        return [""] * len(LABELS) if scores is None else [f"{p:.4f}" for p in scores]

    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(csv_columns())
        for w in windows:
            row = [f"{w.time_s:.3f}", w.audio_status, w.video_status, w.faces, w.top_emotion,
                   number(w.top_probability, bool(w.top_emotion)), int(w.uncertain) if w.top_emotion else "",
                   w.uncertainty_reason, w.fusion_method, number(w.audio_confidence, w.audio is not None),
                   number(w.video_confidence, w.video is not None)]
            for modality, _ in _MODALITIES:
                row.extend(cells(getattr(w, modality)))
            row += [w.instant_top_emotion, number(w.instant_top_probability, bool(w.instant_top_emotion)), *cells(w.instant_fused)]
            writer.writerow(row)


def write_json(windows: list[WindowResult], path: Path, source: dict) -> None:
    def scores(values: np.ndarray | None) -> dict[str, float] | None:
        return None if values is None else {label: round(float(p), 4) for label, p in zip(LABELS, values)}

    def confidence_or_none(values: np.ndarray | None) -> float | None:
        return None if values is None else round(confidence(values), 4)

    document = {
        "source": source,
        "labels": list(LABELS),
        "windows": [
            {
                "time_s": round(w.time_s, 3),
                "audio": {"status": w.audio_status, "scores": scores(w.audio), "confidence": confidence_or_none(w.audio)},
                "video": {"status": w.video_status, "faces": w.faces, "scores": scores(w.video),
                          "confidence": confidence_or_none(w.video)},
                "fused": scores(w.fused),
                "top_emotion": w.top_emotion or None,
                "top_probability": round(w.top_probability, 4) if w.top_emotion else None,
                "uncertain": w.uncertain if w.top_emotion else None,
                "uncertainty_reason": w.uncertainty_reason or None,
                "fusion_method": w.fusion_method or None,
                "instant": {
                    "fused": scores(w.instant_fused),
                    "top_emotion": w.instant_top_emotion or None,
                    "top_probability": round(w.instant_top_probability, 4) if w.instant_top_emotion else None,
                },
            }
            for w in windows
        ],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")


def write_chart(windows: list[WindowResult], path: Path, title: str) -> None:
    """Stacked emotion probabilities over time, one panel per modality; blank where a modality gave none."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Each window describes the time up to its end: draw it as a step reaching back to the previous one.
    times = np.array([0.0] + [w.time_s for w in windows])
    colours = [np.array(EMOTION_RGB[label]) / 255 for label in LABELS]
    figure, axes = plt.subplots(3, 1, figsize=(12, 7.5), sharex=True, height_ratios=(1.4, 1, 1), constrained_layout=True)
    for axis, (modality, name) in zip(axes, _MODALITIES):
        values = np.array([_or_zeros(getattr(w, modality)) for w in windows])
        axis.stackplot(times, np.vstack([values[:1], values]).T, colors=colours, labels=LABELS, step="pre", alpha=0.95)
        axis.set_ylim(0, 1)
        axis.set_ylabel(name)
        axis.set_yticks([0, 0.5, 1])
        axis.margins(x=0)
        axis.grid(axis="y", alpha=0.3)
    for previous, w in zip(times, windows):
        if w.uncertain:  # hatched over the fused panel: the answer there is a guess
            axes[0].axvspan(previous, w.time_s, facecolor="none", edgecolor="black", hatch="///", linewidth=0, alpha=0.5)
    axes[0].set_title(title, loc="left")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.005, 1), frameon=False)
    axes[-1].set_xlabel("time (s); blank where a modality gave no scores (no face, no speech, or not analysed); "
                        "hatched where the fused answer is uncertain")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _or_zeros(scores: np.ndarray | None) -> np.ndarray:
    return np.zeros(len(LABELS)) if scores is None else scores


def write_outputs(windows: list[WindowResult], out_dir: Path, outputs: tuple[str, ...], source: dict) -> list[Path]:
    """Writes only the outputs asked for; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in OUTPUTS:
        if kind not in outputs:
            continue
        path = out_dir / f"timeline.{kind}"
        if kind == "csv":
            write_csv(windows, path)
        elif kind == "json":
            write_json(windows, path, source)
        else:
            write_chart(windows, path, title=f"Emotions over time: {Path(source['file']).name}")
        written.append(path)
    return written


def summary(windows: list[WindowResult], took_s: float, duration_s: float) -> str:
    """One line for the user: how much, how fast, and the emotion shown most often (uncertain answers left out)."""
    tops = [w.top_emotion for w in windows if w.top_emotion and not w.uncertain]
    uncertain = sum(w.uncertain for w in windows)
    most = max(set(tops), key=tops.count) if tops else None
    line = f"{len(windows)} windows over {duration_s:.1f} s analysed in {took_s:.1f} s ({duration_s / max(took_s, 1e-6):.0f}x real time)"
    line += f"; most often: {most} ({tops.count(most)}/{len(windows)} windows)" if most else "; no emotion found"
    return line + (f"; uncertain in {uncertain}" if uncertain else "")
