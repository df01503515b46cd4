"""Does averaging a face's answer with its mirror image's (test-time flips) beat the single answer?

    python -m training.compare_test_time_flips --data ../shared/datasets [--model MODEL_DIR]

Measured with an exported model (default: the newest in model_repository/video/) on the validation faces of
training.validation_halves (every part: nothing is fitted here), crops made by the live path's code. Serving it
would send two crops per face to the model server, so it costs a second face's Predict. Writes
training/reports/video/test_time_flips.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from fusion_service.features.faces.pipeline import FacePipeline
from training.face_corpora import FaceItem
from training.model_versions import DEFAULT_REPOSITORY, newest_version
from training.reporting import evaluate_predictions
from training.train_video import REPORT_DIR, THREADS, use_threads
from training.validation_halves import face_validation
from training.video_eval import live_crops

BATCH_SIZE = 256


def answers(serve, crops: np.ndarray) -> np.ndarray:
    rows = [serve(image=tf.constant(crops[start:start + BATCH_SIZE]))["probabilities"].numpy()
            for start in range(0, len(crops), BATCH_SIZE)]
    return np.concatenate(rows)


def single_and_flip_averaged(serve, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The served answers for crops [n, 48, 48, 1], and their means with the answers for the mirrored crops."""
    single = answers(serve, crops)
    mirrored = np.ascontiguousarray(crops[:, :, ::-1])
    return single, (single + answers(serve, mirrored)) / 2


def compare(sets: dict[str, list[FaceItem]], model_dir: Path) -> dict:
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    pipeline = FacePipeline()
    results = {}
    for corpus, items in sets.items():
        crops = live_crops(items, pipeline)
        found = [i for i, crop in enumerate(crops) if crop is not None]
        single, averaged = single_and_flip_averaged(serve, np.stack([crops[i] for i in found]))
        figures = {}
        for view, found_answers in (("single", single), ("with_flip", averaged)):
            probabilities: list[np.ndarray | None] = [None] * len(items)
            for i, row in zip(found, found_answers):
                probabilities[i] = row
            report = evaluate_predictions([item.label for item in items], probabilities)
            figures[view] = {"n": report["n"], "accuracy": report["accuracy"], "uar": report["uar"],
                             "accuracy_4": report["seed4"]["accuracy"], "ece": report["calibration"]["ece"]}
        results[corpus] = figures
        print(corpus, {view: round(f["accuracy"], 4) for view, f in figures.items()}, flush=True)
    return {"model": os.path.relpath(model_dir), "results": results}


def write_record(record: dict) -> None:
    (REPORT_DIR / "test_time_flips.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = ["# Face model: test-time flips", "",
             f"Model `{record['model']}`; `python -m training.compare_test_time_flips`. With flip: the mean of the "
             "probabilities of the crop and of its mirror image (two crops per face to the model server).", "",
             "| validation set | n | accuracy | with flip | UAR | with flip | accuracy (4) | with flip | ECE | with flip |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for corpus, figures in record["results"].items():
        single, flipped = figures["single"], figures["with_flip"]
        lines.append(f"| {corpus} | {single['n']} | " + " | ".join(
            f"{single[key]:.3f} | {flipped[key]:.3f}" for key in ("accuracy", "uar", "accuracy_4", "ece")) + " |")
    (REPORT_DIR / "test_time_flips.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.compare_test_time_flips",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="datasets folder (has faces/)")
    parser.add_argument("--model", type=Path, help="exported model version directory (default: newest)")
    parser.add_argument("--threads", type=int, default=THREADS, help="TensorFlow intra-op threads")
    args = parser.parse_args(argv)
    if not (args.data / "faces").is_dir():
        parser.error(f"{args.data} has no faces/ folder: pass --data, the datasets folder")
    use_threads(args.threads)
    record = compare({v.corpus: v.items for v in face_validation(args.data / "faces")},
                     args.model or newest_version(DEFAULT_REPOSITORY, "video"))
    write_record(record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
