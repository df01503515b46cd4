"""Does aligning face crops by the eyes beat today's framing (BlazeFace box, upright beyond 12 degrees of roll)?

    python -m training.compare_face_alignment --data ../shared/datasets [--model MODEL_DIR]

Measured with an exported model (default: the newest in model_repository/video/) on the validation faces of
training.train_video: the FER2013 hold-out, the CK+48 held-out subjects (both face crops: the landmark network
sees the whole crop as the face) and the Taiwanese validation performers (full images: BlazeFace finds the face,
the landmark network places the eyes in it). The aligned crops' EyeFraming is the mean eye geometry of FER2013
training crops, the framing the model learned from. Writes training/reports/video/face_alignment.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from fusion_service.features.faces.align import EyeFraming, FaceLandmarker, aligned_crop, eye_geometry
from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.pipeline import FacePipeline, detector_input
from protos.emotion.v1.constants import LABELS
from training.model_versions import DEFAULT_REPOSITORY, newest_version
from training.face_corpora import FaceItem, face_crop_of, load_fer2013, read_image
from training.face_dataset import stratified_holdout
from training.reporting import evaluate_predictions
from training.train_video import (
    FER_HOLDOUT_FRACTION,
    REPORT_DIR,
    SEED,
    THREADS,
    use_threads,
)
from training.validation_halves import face_validation

FRAMING_SAMPLE = 2000  # FER2013 training crops whose mean eye geometry sets the EyeFraming


def fitted_framing(items: list[FaceItem], landmarker: FaceLandmarker) -> EyeFraming:
    """The mean eye distance and height of these face crops (each crop its own face box)."""
    geometry = []
    for item in items:
        gray = to_gray(read_image(item))
        eyes = landmarker.eyes(gray, Box(0, 0, gray.shape[1], gray.shape[0]))
        geometry.append(eye_geometry(eyes, gray.shape[1]))
    distance, height = np.mean(geometry, axis=0)
    return EyeFraming(eye_distance=float(distance), eye_height=float(height))


def both_crops(item: FaceItem, pipeline: FacePipeline, landmarker: FaceLandmarker, framing: EyeFraming,
               seconds: list[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """(today's crop, the eye-aligned crop) of an item, None where no face is found; landmark time in `seconds`."""
    image = read_image(item)
    gray = to_gray(image)
    if item.is_face_crop:
        box, landmark_input = Box(0, 0, gray.shape[1], gray.shape[0]), gray
    else:
        boxes = pipeline.detector.detect(detector_input(image, gray))
        if not boxes:
            return None
        box, landmark_input = boxes[0], detector_input(image, gray)
    started = time.perf_counter()
    eyes = landmarker.eyes(landmark_input, box)
    seconds.append(time.perf_counter() - started)
    return face_crop_of(item, pipeline), aligned_crop(gray, eyes, framing)


def compare(sets: dict[str, list[FaceItem]], model_dir: Path, framing: EyeFraming) -> dict:
    serve = tf.saved_model.load(str(model_dir)).signatures["serving_default"]
    pipeline, landmarker = FacePipeline(), FaceLandmarker()
    results, seconds = {}, []
    for corpus, items in sets.items():
        pairs = [both_crops(item, pipeline, landmarker, framing, seconds) for item in items]
        figures = {}
        for view, index in (("today", 0), ("eye_aligned", 1)):
            found = [i for i, pair in enumerate(pairs) if pair is not None]
            probabilities: list[np.ndarray | None] = [None] * len(items)
            if found:
                batch = np.stack([pairs[i][index] for i in found])
                for i, row in zip(found, serve(image=tf.constant(batch))["probabilities"].numpy()):
                    probabilities[i] = row
            report = evaluate_predictions([item.label for item in items], probabilities)
            figures[view] = {"n": report["n"], "accuracy": report["accuracy"], "uar": report["uar"],
                             "accuracy_4": report["seed4"]["accuracy"], "per_class_recall": report["per_class_recall"]}
        results[corpus] = figures
        print(corpus, {view: round(f["accuracy"], 4) for view, f in figures.items()}, flush=True)
    return {"model": str(model_dir), "framing": framing.__dict__, "results": results,
            "landmark_ms_p50": 1000 * float(np.median(seconds)), "landmark_faces": len(seconds)}


def validation_sets(faces: Path) -> dict[str, list[FaceItem]]:
    return {validation.corpus: validation.items for validation in face_validation(faces)}


def write_record(record: dict) -> None:
    (REPORT_DIR / "face_alignment.json").write_text(json.dumps(record, indent=2) + "\n")
    framing = record["framing"]
    lines = ["# Face crops: eye alignment against today's framing", "",
             f"Model `{record['model']}`; `python -m training.compare_face_alignment`. Eye-aligned: rotation and "
             f"scale from the face landmark network's eye centres (fusion_service/features/faces/align.py), eye "
             f"distance {framing['eye_distance']:.3f} and eye height {framing['eye_height']:.3f} of the crop side "
             f"(the mean of {FRAMING_SAMPLE} FER2013 training crops). Today: the detector's framing, upright "
             "beyond 12 degrees of roll (face crops: the whole crop).", "",
             "| validation set | n | today acc | aligned acc | today UAR | aligned UAR | today acc (4) | aligned acc (4) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for corpus, figures in record["results"].items():
        today, aligned = figures["today"], figures["eye_aligned"]
        lines.append(f"| {corpus} | {today['n']} | {today['accuracy']:.3f} | {aligned['accuracy']:.3f} | "
                     f"{today['uar']:.3f} | {aligned['uar']:.3f} | {today['accuracy_4']:.3f} | "
                     f"{aligned['accuracy_4']:.3f} |")
    lines += ["", f"Landmark network: {record['landmark_ms_p50']:.1f} ms per face (median of "
              f"{record['landmark_faces']}, OpenCV, on the shared machine of the run).", ""]
    (REPORT_DIR / "face_alignment.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.compare_face_alignment",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="datasets folder (has faces/)")
    parser.add_argument("--model", type=Path, help="exported model version directory (default: newest)")
    parser.add_argument("--threads", type=int, default=THREADS, help="TensorFlow intra-op and OpenCV threads")
    args = parser.parse_args(argv)
    use_threads(args.threads)
    cv2.setNumThreads(args.threads)
    faces = args.data / "faces"
    missing = [name for name in ("fer2013", "ck48", "taiwanese") if not (faces / name).is_dir()]
    if missing:
        parser.error(f"{faces} lacks {', '.join(missing)}: pass --data, the folder holding faces/")
    model_dir = args.model or newest_version(DEFAULT_REPOSITORY, "video")
    fer = [item for item in load_fer2013(faces / "fer2013") if item.split in (None, "train")]
    fer_train, _ = stratified_holdout(np.array([LABELS.index(item.label) for item in fer]), FER_HOLDOUT_FRACTION, SEED)
    sample = np.random.default_rng(SEED).choice(fer_train, size=FRAMING_SAMPLE, replace=False)
    framing = fitted_framing([fer[i] for i in sample], FaceLandmarker())
    print(f"framing {framing}", flush=True)
    record = compare(validation_sets(faces), model_dir, framing)
    write_record(record)
    print(json.dumps({corpus: {v: round(f["accuracy"], 4) for v, f in figures.items()}
                      for corpus, figures in record["results"].items()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
