"""A recording's per-window results and the files they are written to: CSV, JSON and a PNG chart."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from capture_client.palette import EMOTION_RGB
from capture_client.results import probabilities, status_name
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
    fused: np.ndarray | None
    top_emotion: str
    top_probability: float

    @classmethod
    def from_response(cls, time_s: float, response: pb.FuseResponse) -> "WindowResult":
        return cls(
            time_s=time_s,
            audio_status=status_name(response.audio.status),
            video_status=status_name(response.video.status),
            faces=len(response.faces),
            audio=probabilities(response.audio.scores),
            video=probabilities(response.video.scores),
            fused=probabilities(response.fused),
            top_emotion=response.top_emotion,
            top_probability=response.top_probability,
        )


def csv_columns() -> list[str]:
    scores = [f"{modality}_{label}" for modality, _ in _MODALITIES for label in LABELS]
    return ["time_s", "audio_status", "video_status", "faces", "top_emotion", "top_probability", *scores]


def write_csv(windows: list[WindowResult], path: Path) -> None:
    """One row per window; score cells stay empty where a modality gave no scores."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(csv_columns())
        for w in windows:
            row = [f"{w.time_s:.3f}", w.audio_status, w.video_status, w.faces, w.top_emotion,
                   f"{w.top_probability:.4f}" if w.top_emotion else ""]
            for modality, _ in _MODALITIES:
                scores = getattr(w, modality)
                row.extend([""] * len(LABELS) if scores is None else [f"{p:.4f}" for p in scores])
            writer.writerow(row)


def write_json(windows: list[WindowResult], path: Path, source: dict) -> None:
    def scores(values: np.ndarray | None) -> dict[str, float] | None:
        return None if values is None else {label: round(float(p), 4) for label, p in zip(LABELS, values)}

    document = {
        "source": source,
        "labels": list(LABELS),
        "windows": [
            {
                "time_s": round(w.time_s, 3),
                "audio": {"status": w.audio_status, "scores": scores(w.audio)},
                "video": {"status": w.video_status, "faces": w.faces, "scores": scores(w.video)},
                "fused": scores(w.fused),
                "top_emotion": w.top_emotion or None,
                "top_probability": round(w.top_probability, 4) if w.top_emotion else None,
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
    axes[0].set_title(title, loc="left")
    axes[0].legend(loc="upper left", bbox_to_anchor=(1.005, 1), frameon=False)
    axes[-1].set_xlabel("time (s); blank where a modality gave no scores (no face, no speech, or not analysed)")
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
    """One line for the user: how much, how fast, and the emotion shown most often."""
    tops = [w.top_emotion for w in windows if w.top_emotion]
    most = max(set(tops), key=tops.count) if tops else None
    line = f"{len(windows)} windows over {duration_s:.1f} s analysed in {took_s:.1f} s ({duration_s / max(took_s, 1e-6):.0f}x real time)"
    return line + (f"; most often: {most} ({tops.count(most)}/{len(windows)} windows)" if most else "; no emotion found")
