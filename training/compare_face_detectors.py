"""Compare the face detectors on held-out faces set in a larger image: how many faces each finds, and the
accuracy of the face model on its crops (a face not found counts as an error, as in the evaluation CLI).

FER2013 and CK+48 images are face crops; each is upscaled to 192 px and set in a 384 px canvas of
replicated edges, as training/calibrate_face_margin.py does, so a detector has to find the face and the
pipeline has to frame it. The held-out faces are train_video's: the FER2013 hold-out (a seeded sample of
it) and the held-out CK+48 subjects recorded in the video report.

    python -m training.compare_face_detectors [--faces ../shared/datasets/faces] [--model MODEL_DIR (default: the newest video version)]

Prints the figures and writes them to training/reports/video/face_detectors.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.names import DETECTOR_NAMES
from fusion_service.features.faces.pipeline import FacePipeline, make_detector
from protos.emotion.v1.constants import LABELS
from training.calibrate_face_margin import in_context
from training.model_versions import DEFAULT_REPOSITORY, newest_version
from training.face_corpora import load_ck48, load_fer2013, read_image
from training.face_dataset import stratified_holdout
from training.train_video import FER_HOLDOUT_FRACTION, REPORT_DIR, SEED


def held_out_faces(faces: Path, fer_sample: int) -> dict[str, list]:
    ck_subjects = set(json.loads((REPORT_DIR / "ck48_heldout_subjects" / "report.json").read_text())
                      ["extra"]["held_out_subjects"])
    fer = [item for item in load_fer2013(faces / "fer2013") if item.split in (None, "train")]
    _, held = stratified_holdout(np.array([LABELS.index(item.label) for item in fer]), FER_HOLDOUT_FRACTION, SEED)
    sample = np.random.default_rng(0).choice(held, min(fer_sample, len(held)), replace=False)
    return {
        "FER2013 hold-out": [fer[i] for i in sorted(sample)],
        "CK+48 held-out subjects": [item for item in load_ck48(faces / "ck48") if item.subject in ck_subjects],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("../shared/datasets/faces"), help="datasets' faces/ folder")
    parser.add_argument("--model", type=Path, help="exported face model version (default: the newest)")
    parser.add_argument("--fer-sample", type=int, default=800, help="FER2013 hold-out images used")
    args = parser.parse_args()
    args.model = args.model or newest_version(DEFAULT_REPOSITORY, "video")

    signature = tf.saved_model.load(str(args.model)).signatures["serving_default"]

    def classify(crops: np.ndarray) -> np.ndarray:
        return signature(image=tf.constant(crops))["probabilities"].numpy().argmax(axis=1)

    pipelines = {name: FacePipeline(make_detector(name)) for name in DETECTOR_NAMES}
    lines = ["# Face detectors on held-out faces", "", __doc__.split("\n\n")[1].replace("\n", " "), "",
             f"Model: `{args.model}`. Command: `python -m training.compare_face_detectors`.", "",
             "| held-out set | n | detector | faces found | accuracy (not found = error) | accuracy where found |",
             "|---|---:|---|---:|---:|---:|"]
    for corpus, items in held_out_faces(args.faces, args.fer_sample).items():
        truth = np.array([LABELS.index(item.label) for item in items])
        grays = [to_gray(read_image(item)) for item in items]
        as_crops = classify(np.stack([pipelines["haar"].face_image(gray) for gray in grays]))
        print(f"{corpus}: n {len(items)}; the model on the crops themselves: accuracy {np.mean(as_crops == truth):.3f}")
        lines.append(f"| {corpus} | {len(items)} | none (the crop itself) | | {np.mean(as_crops == truth):.3f} | |")
        canvases = [in_context(gray) for gray in grays]
        for name, pipeline in pipelines.items():
            predicted = []
            for canvas in canvases:
                boxes, crops = pipeline.faces(canvas)
                predicted.append(classify(crops[:1])[0] if boxes else -1)
            predicted = np.array(predicted)
            found = predicted >= 0
            where_found = np.mean(predicted[found] == truth[found]) if found.any() else float("nan")
            print(f"  {name:10s} found {found.mean():.3f}; accuracy {np.mean(predicted == truth):.3f} "
                  f"(where found {where_found:.3f})")
            lines.append(f"| {corpus} | {len(items)} | {name} | {found.mean():.3f} | {np.mean(predicted == truth):.3f} "
                         f"| {where_found:.3f} |")
    (REPORT_DIR / "face_detectors.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
