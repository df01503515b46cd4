"""Measure how a live face detector frames training faces, to derive its Framing (margin and shift).

FER2013 and CK+48 images are already face crops. Each one is upscaled (so the 24 px cascade
works) and set in a canvas twice its size with replicated edges: without that context the
detector can only return boxes that fit inside the crop, which caps the measured box size
(about 0.85 of the image whatever the true framing) and skips faces whose box would not fit.
The box nearest the centre, relative to the image side, gives the margin that widens a detected
box back to the training framing, (1 / ratio - 1) / 2, and the offset of its centre the shift that
moves it back, -offset / ratio. As a cross-check, the detected boxes are re-cropped with face_crop
at several margins (with that shift) and compared with the original images.

    python -m training.calibrate_face_margin [--detector haar|blazeface] [--faces ../shared/datasets/faces]

Only reads the datasets; prints the figures and the derived margin.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box, FaceDetector, Framing
from fusion_service.features.faces.crop import FACE_SIZE, face_crop
from fusion_service.features.faces.names import DEFAULT_DETECTOR, DETECTOR_NAMES
from fusion_service.features.faces.pipeline import make_detector

CORPORA = {"FER2013": "fer2013/train", "CK+48": "ck48"}
CHECK_MARGINS = (-0.05, 0.0, 0.05, 0.1, 0.15)
UPSCALE_TO = 192  # side the 48 px images are upscaled to, so the 24 px Haar window fits a face


def sample_images(folder: Path, count: int, rng: random.Random) -> list[Path]:
    paths = sorted(folder.rglob("*.png"))
    if not paths:
        raise SystemExit(f"no PNG images under {folder}: pass --faces pointing at the datasets' faces/ folder")
    return rng.sample(paths, min(count, len(paths)))


def in_context(gray: np.ndarray, upscale_to: int = UPSCALE_TO) -> np.ndarray:
    """A face crop upscaled to `upscale_to` and set in the middle of a canvas twice that size, of replicated edges."""
    pad = upscale_to // 2
    big = cv2.resize(gray, (upscale_to, upscale_to), interpolation=cv2.INTER_LINEAR)
    return cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def centre_box(boxes: list[Box], centre: float) -> Box:
    """The detection nearest the canvas centre: the training face, not something in the padding."""
    return min(boxes, key=lambda b: abs(b.x + b.width / 2 - centre) + abs(b.y + b.height / 2 - centre))


def measure(paths: list[Path], detector: FaceDetector, upscale_to: int) -> tuple[np.ndarray, list]:
    """Per detected image: (box side / image side, centre offset x, y in image sides), and what the
    re-crop check needs: the canvas, the box and the original image at FACE_SIZE."""
    figures, crops = [], []
    pad = upscale_to // 2
    for path in paths:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if gray is None:
            raise SystemExit(f"cannot read image {path}")
        canvas = in_context(gray, upscale_to)
        boxes = detector.detect(canvas)
        if not boxes:
            continue
        box = centre_box(boxes, pad + upscale_to / 2)
        figures.append(
            (
                max(box.width, box.height) / upscale_to,
                (box.x + box.width / 2 - pad) / upscale_to - 0.5,
                (box.y + box.height / 2 - pad) / upscale_to - 0.5,
            )
        )
        original = cv2.resize(gray, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA).astype(np.float32)
        crops.append((canvas, box, original))
    return np.asarray(figures).reshape(-1, 3), crops


def margin_for(ratio: float) -> float:
    """Margin per side that widens a box of `ratio` x the training framing back to the full framing."""
    return (1.0 / ratio - 1.0) / 2.0


def report(name: str, figures: np.ndarray, crops: list, attempted: int) -> Framing:
    """Prints one corpus's figures and returns its framing."""
    q1, median, q3 = np.percentile(figures[:, 0], [25, 50, 75])
    offset_x, offset_y = np.median(figures[:, 1:], axis=0)
    framing = Framing(margin=margin_for(median), shift=-offset_y / median)
    print(
        f"{name:8s} detected {len(figures)}/{attempted}; box side / image side median {median:.3f} "
        f"(IQR {q1:.3f}-{q3:.3f}); centre offset median ({offset_x:+.3f}, {offset_y:+.3f}); "
        f"margin {framing.margin:+.3f}, shift {framing.shift:+.3f}"
    )
    differences = [
        np.median([np.abs(face_crop(canvas, box, margin=m, shift=framing.shift)[:, :, 0] * 255.0 - original).mean()
                   for canvas, box, original in crops])
        for m in CHECK_MARGINS
    ]
    check = ", ".join(f"{m:+.2f}: {d:.1f}" for m, d in zip(CHECK_MARGINS, differences))
    print(f"{'':8s} re-crop vs image, median abs difference (gray levels) by margin: {check}")
    return framing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("../shared/datasets/faces"), help="datasets' faces/ folder")
    parser.add_argument("--per-corpus", type=int, default=400, help="images sampled from each corpus")
    parser.add_argument("--upscale-to", type=int, default=UPSCALE_TO, help="side the 48 px images are upscaled to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", choices=DETECTOR_NAMES, default=DEFAULT_DETECTOR, help="detector to calibrate")
    args = parser.parse_args()

    detector = make_detector(args.detector)
    rng = random.Random(args.seed)
    framings = []
    for name, subfolder in CORPORA.items():
        paths = sample_images(args.faces / subfolder, args.per_corpus, rng)
        figures, crops = measure(paths, detector, args.upscale_to)
        if len(figures) == 0:
            raise SystemExit(f"the detector found no face in any {name} image: check --upscale-to")
        framings.append(report(name, figures, crops, len(paths)))
    # Each corpus counts once, however many of its faces the detector finds.
    margin = float(np.mean([f.margin for f in framings]))
    shift = float(np.mean([f.shift for f in framings]))
    print(f"derived Framing(margin={margin:+.3f}, shift={shift:+.3f}) (mean of the corpora's; the detector has "
          f"{detector.framing})")


if __name__ == "__main__":
    main()
