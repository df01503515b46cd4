"""Face detection benchmark: faces of every practical size, in frames of two sizes, per detector.

Faces of validation subjects (the FER2013 hold-out, the held-out CK+48 subjects and the Taiwanese validation
performers of train_video) and real photographs that registry packages
ship (scikit-image's astronaut and the 100 faces of its LFW subset) are pasted, at widths of 24-400 px, into
640x480 and 1280x720 frames over face-free backgrounds (scikit-image photographs and textures, noise), at random
positions, turned by up to 10 degrees, with changed brightness, contrast and gamma. Frames hold one face, or two
to four of different sizes, or none. A face counts as found when a detection, framed as the live path frames it
for its crop (the detector's measured margin and shift), overlaps the face's box by an IoU of at least 0.3. Then
the live path's crops (FacePipeline.faces on the frame, the default detector) of validation faces at each width
go through the video model: a face not found counts as an error.

A face's width is the side of its training-like framing: the whole image of a FER2013 / CK+48 crop; for full
photographs (Taiwanese, astronaut), BlazeFace's box in the photograph at its own size, widened by the framing
measured for BlazeFace (photographs where it finds no face are left out).

    .venv-ml/bin/python -m training.face_detection_benchmark [--faces ../shared/datasets/faces] [--quick]

Writes training/reports/video/face_detection.md and face_detection_recall.png.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fusion_service.features.faces.blazeface import FULL_RANGE, BlazeFaceDetector
from fusion_service.features.faces.boxes import Box, FaceDetector, Framing
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.pipeline import FacePipeline, make_detector
from protos.emotion.v1.constants import LABELS
from training.face_corpora import load_taiwanese, read_image
from training.model_versions import DEFAULT_REPOSITORY, newest_version

REPORT_DIR = Path(__file__).resolve().parent / "reports" / "video"
FRAME_SIZES = ((640, 480), (1280, 720))
WIDTH_BUCKETS = ((24, 32), (32, 40), (40, 60), (60, 80), (80, 120), (120, 200), (200, 401))
ACCURACY_WIDTHS = (24, 32, 40, 48, 64, 80, 120, 200)
MATCH_IOU = 0.3
MAX_ROLL_DEGREES = 10.0
CONTEXT = 0.3  # of the face's side, around a pasted face crop: replicated edges, faded into the background
LFW_MAX_WIDTH = 100  # LFW's faces are 25 px: not pasted wider than this


@dataclass(frozen=True)
class FaceSource:
    """A face to paste: an image (gray or BGR), the face's box in it, and its label if it has one."""

    image: np.ndarray
    box: Box
    corpus: str
    label: str | None = None
    max_width: int = 10_000


@dataclass
class Scene:
    frame: np.ndarray
    faces: list[Box]
    sources: list[FaceSource]


def bucket_name(low: int, high: int) -> str:
    return f"{low}-{high - 1}" if high <= 400 else f"{low}-400"


def bucket_of(width: float) -> int | None:
    for index, (low, high) in enumerate(WIDTH_BUCKETS):
        if low <= width < high:
            return index
    return None


# ----------------------------------------------------------------------------------------------- sources


def widened(box: Box, framing: Framing) -> Box:
    """A detector's box turned into the training-like framing the crop uses (margin and shift)."""
    side = max(box.width, box.height) * (1 + 2 * framing.margin)
    centre_x = box.x + box.width / 2
    centre_y = box.y + box.height / 2 + framing.shift * max(box.width, box.height)
    return Box(round(centre_x - side / 2), round(centre_y - side / 2), round(side), round(side))


def photo_sources(images: Sequence[np.ndarray], corpus: str, labels: Sequence[str | None] | None = None) -> list[FaceSource]:
    """Full photographs: the face is where BlazeFace finds it at the photograph's own size; the head and a
    CONTEXT-wide strip of the photograph around it are pasted."""
    detector = BlazeFaceDetector()
    sources = []
    for index, image in enumerate(images):
        boxes = detector.detect(image)
        if not boxes:
            continue
        face = widened(boxes[0], detector.framing)
        pad = round(CONTEXT * face.width)
        x0, y0 = max(0, face.x - pad), max(0, face.y - pad)
        x1, y1 = min(image.shape[1], face.x + face.width + pad), min(image.shape[0], face.y + face.height + pad)
        label = labels[index] if labels is not None else None
        head = np.ascontiguousarray(image[y0:y1, x0:x1])
        sources.append(FaceSource(head, Box(face.x - x0, face.y - y0, face.width, face.height), corpus, label))
    return sources


def crop_sources(images: Sequence[np.ndarray], corpus: str, labels: Sequence[str | None], max_width: int = 10_000) -> list[FaceSource]:
    """Face crops (FER2013, CK+48, LFW): the face is the whole image, given context of replicated edges."""
    sources = []
    for image, label in zip(images, labels):
        side = image.shape[1]
        pad = round(CONTEXT * side)
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        sources.append(FaceSource(padded, Box(pad, pad, side, image.shape[0]), corpus, label, max_width))
    return sources


def registry_sources() -> list[FaceSource]:
    from skimage import data

    astronaut = np.ascontiguousarray(data.astronaut()[:, :, ::-1])
    lfw = (data.lfw_subset()[:100] * 255).round().astype(np.uint8)  # the subset's first 100 images are faces
    return photo_sources([astronaut], "astronaut") + crop_sources(list(lfw), "lfw", [None] * len(lfw), LFW_MAX_WIDTH)


def validation_sources(faces: Path, per_corpus: int, seed: int) -> dict[str, list[FaceSource]]:
    """Held-out faces with their labels: train_video's FER2013 hold-out, CK+48 subjects and Taiwanese performers."""
    from training.compare_face_detectors import held_out_faces  # TensorFlow: only for the validation faces
    from training.train_video import TAIWANESE_VALIDATION_PERFORMERS

    rng = np.random.default_rng(seed)
    held = held_out_faces(faces, per_corpus)
    sources = {}
    for name, items in held.items():
        items = [items[i] for i in sorted(rng.choice(len(items), min(per_corpus, len(items)), replace=False))]
        sources[name] = crop_sources([to_gray(read_image(item)) for item in items], name, [item.label for item in items])
    taiwanese = load_taiwanese(faces / "taiwanese")
    held_performers = [i for i, item in enumerate(taiwanese) if item.subject in TAIWANESE_VALIDATION_PERFORMERS]
    chosen = sorted(rng.choice(held_performers, min(per_corpus, len(held_performers)), replace=False))
    performers = sorted({taiwanese[i].subject for i in held_performers})
    name = f"Taiwanese held-out performers ({', '.join(performers)})"
    sources[name] = photo_sources([read_image(taiwanese[i]) for i in chosen], name, [taiwanese[i].label for i in chosen])
    return sources


# ------------------------------------------------------------------------------------------ backgrounds


def backgrounds() -> list[np.ndarray]:
    """Face-free BGR images: scikit-image photographs and textures (a cat among them)."""
    from skimage import data

    images = [data.coffee(), data.chelsea(), data.rocket(), data.brick(), data.grass(), data.gravel(), data.coins(),
              data.horse(), data.hubble_deep_field(), data.immunohistochemistry(), data.moon(), data.page(), data.text(),
              data.stereo_motorcycle()[0], data.retina(), data.cell(), data.logo()]
    result = []
    for image in images:
        image = np.asarray(image)
        if image.dtype == bool:
            image = image.astype(np.uint8) * 255
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        result.append(np.ascontiguousarray(image[:, :, 2::-1]))  # RGB(A) -> BGR
    return result


def background(photos: Sequence[np.ndarray], width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A frame-sized background: a random part of a photograph (one in five: noise, smoothed at a random scale)."""
    if rng.random() < 0.2:
        noise = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
        return cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_NEAREST)
    photo = photos[rng.integers(len(photos))]
    zoom = rng.uniform(0.5, 1.0)
    crop_w = max(16, round(photo.shape[1] * zoom))
    crop_h = min(photo.shape[0], max(16, round(crop_w * height / width)))
    y, x = rng.integers(0, photo.shape[0] - crop_h + 1), rng.integers(0, photo.shape[1] - crop_w + 1)
    return cv2.resize(photo[y : y + crop_h, x : x + crop_w], (width, height), interpolation=cv2.INTER_LINEAR)


# ------------------------------------------------------------------------------------------------ scenes


def paste(frame: np.ndarray, source: FaceSource, width: int, centre: tuple[float, float], rng: np.random.Generator) -> Box:
    """Pastes the source's face `width` px wide with its centre at `centre`, turned and relit; returns its box."""
    scale = width / source.box.width
    image = source.image if source.image.ndim == 3 else np.repeat(source.image[:, :, None], 3, axis=2)
    face_centre = (source.box.x + source.box.width / 2, source.box.y + source.box.height / 2)
    turn = cv2.getRotationMatrix2D(face_centre, rng.uniform(-MAX_ROLL_DEGREES, MAX_ROLL_DEGREES), scale)
    turn[:, 2] += (centre[0] - face_centre[0], centre[1] - face_centre[1])  # face centre onto `centre`
    height, frame_width = frame.shape[:2]
    patch = cv2.warpAffine(image, turn, (frame_width, height), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    # The source's own pixels, faded out over its last CONTEXT-wide strip, over the background.
    mask = np.zeros(image.shape[:2], np.float32)
    inner = round(CONTEXT * source.box.width * 0.5)
    mask[inner : mask.shape[0] - inner, inner : mask.shape[1] - inner] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, inner / 2))
    alpha = cv2.warpAffine(mask, turn, (frame_width, height))[:, :, None]
    gain, gamma = rng.uniform(0.6, 1.3), rng.uniform(0.7, 1.4)
    relit = np.clip(255.0 * (patch / 255.0) ** gamma * gain + rng.uniform(-20, 20), 0, 255)
    frame[:] = np.clip(alpha * relit + (1 - alpha) * frame, 0, 255).astype(np.uint8)
    side = source.box.height * scale
    return Box(round(centre[0] - width / 2), round(centre[1] - side / 2), round(width), round(side))


def random_width(bucket: int, source: FaceSource, frame_height: int, rng: np.random.Generator) -> int | None:
    low, high = WIDTH_BUCKETS[bucket]
    high = min(high, source.max_width + 1, frame_height)
    return int(rng.integers(low, high)) if high > low else None


def scene(photos, sources: Sequence[FaceSource], widths: Sequence[int], size: tuple[int, int], rng) -> Scene:
    """A frame with one face per width, at random places where the faces do not overlap."""
    width, height = size
    frame = background(photos, width, height, rng)
    placed: list[Box] = []
    used: list[FaceSource] = []
    for face_width, source in zip(widths, sources):
        side = face_width * source.box.height / source.box.width
        for _ in range(50):
            centre = (rng.uniform(face_width / 2, width - face_width / 2), rng.uniform(side / 2, height - side / 2))
            candidate = Box(round(centre[0] - face_width / 2), round(centre[1] - side / 2), face_width, round(side))
            margin = Box(candidate.x - face_width // 2, candidate.y - face_width // 2, 2 * face_width, round(2 * side))
            if all(margin.overlap(other) == 0 for other in placed):
                placed.append(paste(frame, source, face_width, centre, rng))
                used.append(source)
                break
    return Scene(frame, placed, used)


def scenes(photos, sources: Sequence[FaceSource], size: tuple[int, int], single: int, multi: int, empty: int,
           rng: np.random.Generator) -> tuple[list[Scene], list[Scene], list[Scene]]:
    """Frames with one face (widths spread evenly over the buckets), with two to four, and with none."""
    singles, multis = [], []
    while len(singles) < single:
        source = sources[rng.integers(len(sources))]
        face_width = random_width(len(singles) % len(WIDTH_BUCKETS), source, size[1], rng)
        if face_width is not None:
            singles.append(scene(photos, [source], [face_width], size, rng))
    while len(multis) < multi:
        count = int(rng.integers(2, 5))
        chosen = [sources[i] for i in rng.integers(len(sources), size=count)]
        buckets = rng.choice(len(WIDTH_BUCKETS) - 1, size=count, replace=False)  # different sizes, each under 200 px
        widths = [random_width(b, s, size[1] // 2, rng) for b, s in zip(buckets, chosen)]
        if None not in widths:
            multis.append(scene(photos, chosen, widths, size, rng))
    empties = [Scene(background(photos, *size, rng), [], []) for _ in range(empty)]
    return singles, multis, empties


# ------------------------------------------------------------------------------------------- measuring


@dataclass
class Tally:
    found: np.ndarray  # per bucket
    faces: np.ndarray
    false_in_face_frames: int = 0
    face_frames: int = 0
    false_in_empty_frames: int = 0
    empty_frames: int = 0
    empty_frames_with_false: int = 0

    @classmethod
    def new(cls) -> Tally:
        return cls(np.zeros(len(WIDTH_BUCKETS), int), np.zeros(len(WIDTH_BUCKETS), int))

    def recall(self, low_width: int = 0) -> float:
        chosen = [i for i, (low, _) in enumerate(WIDTH_BUCKETS) if low >= low_width]
        return self.found[chosen].sum() / max(1, self.faces[chosen].sum())


def matched(boxes: Sequence[Box], truth: Box, framing: Framing) -> int | None:
    """The detection whose crop is this face's: the faces' boxes are in the training-like framing, so each detection
    is compared framed as its crop is (`widened`), which puts tight boxes (BlazeFace) and wide ones (Haar) on one
    footing (training/reports/video/face_detection_settings.md, third round)."""
    overlaps = [widened(box, framing).overlap(truth) for box in boxes]
    best = int(np.argmax(overlaps)) if overlaps else -1
    return best if best >= 0 and overlaps[best] >= MATCH_IOU else None


def count(tally: Tally, boxes: Sequence[Box], item: Scene, framing: Framing) -> None:
    matches = set()
    for truth in item.faces:
        bucket = bucket_of(truth.width)
        index = matched(boxes, truth, framing)
        tally.faces[bucket] += 1
        if index is not None:
            tally.found[bucket] += 1
            matches.add(index)
    false = len(boxes) - len(matches)
    if item.faces:
        tally.face_frames += 1
        tally.false_in_face_frames += false
    else:
        tally.empty_frames += 1
        tally.false_in_empty_frames += false
        tally.empty_frames_with_false += false > 0


def measure(detector: FaceDetector, frames: dict[str, list[Scene]]) -> tuple[dict[str, Tally], list[float]]:
    """Tallies per kind of frame, and the CPU milliseconds of each detection (all of the process's threads)."""
    detector.detect(next(iter(frames.values()))[0].frame)  # the first call of a network sets it up
    tallies, times = {}, []
    for kind, items in frames.items():
        tally = tallies[kind] = Tally.new()
        for item in items:
            started = time.process_time()
            boxes = detector.detect(item.frame)
            times.append((time.process_time() - started) * 1000)
            count(tally, boxes, item, detector.framing)
    return tallies, times


class GrayInput:
    """A detector that is given the gray frame only, as the service did before colour reached the detector."""

    def __init__(self, detector: FaceDetector) -> None:
        self.detector, self.framing = detector, detector.framing

    def detect(self, image: np.ndarray) -> list[Box]:
        return self.detector.detect(to_gray(image))


def detectors() -> dict[str, Callable[[], FaceDetector]]:
    return {
        "blazeface (short range, whole frame down to 40 px faces at 32 px, confirmed by FaceMesh, search ends at the "
        "first pass with a face)": lambda: make_detector("blazeface"),
        "blazeface-every-scale (every pass always)": lambda: make_detector("blazeface-every-scale"),
        "blazeface, on after a face up to a 640x480 input": lambda: BlazeFaceDetector(max_pixels_after_face=640 * 480),
        "short range, the default's passes, not confirmed": lambda: BlazeFaceDetector(confirm=False),
        "short range before this round (40 px faces at 26 px, search ends at the first pass with a face, presence "
        ">= 0.5)": lambda: BlazeFaceDetector(reliable_face=26, max_pixels_after_face=0, min_presence=0.5),
        "short range, earlier settings (32 px or 5% of the width at 20 px, presence >= 0.1)": lambda: BlazeFaceDetector(
            smallest_face=32, smallest_face_fraction=0.05, reliable_face=20, min_presence=0.1, max_pixels_after_face=0),
        "short range, one pass, gray (before issue 14)": lambda: GrayInput(BlazeFaceDetector(multi_scale=False, confirm=False)),
        "short range, one pass, colour": lambda: BlazeFaceDetector(multi_scale=False, confirm=False),
        "full range, one pass, colour": lambda: BlazeFaceDetector(model=FULL_RANGE, confirm=False),
        "haar": lambda: make_detector("haar"),
    }


def classify_per_width(sources: dict[str, list[FaceSource]], model: Path, photos, rng) -> list[str]:
    """Accuracy of the video model on the live path's crops of validation faces pasted at each width in 640x480."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(model)).signatures["serving_default"]
    pipeline = FacePipeline()
    lines = ["| validation faces | n | the crop itself | " + " | ".join(f"{w} px" for w in ACCURACY_WIDTHS) + " |",
             "|---|---:|---:|" + "---:|" * len(ACCURACY_WIDTHS)]
    for name, items in sources.items():
        truth = np.array([LABELS.index(item.label) for item in items])
        itself = [pipeline.crops(to_gray(item.image), [item.box])[1][0] for item in items]
        reference = np.mean(signature(image=tf.constant(np.stack(itself)))["probabilities"].numpy().argmax(1) == truth)
        cells = []
        for face_width in ACCURACY_WIDTHS:
            predicted = []
            for item in items:
                frame = scene(photos, [item], [face_width], FRAME_SIZES[0], rng)
                boxes, crops = pipeline.faces(frame.frame)
                index = matched(boxes, frame.faces[0], pipeline.detector.framing) if frame.faces else None
                if index is None:
                    predicted.append(-1)
                else:
                    probabilities = signature(image=tf.constant(crops[index : index + 1]))["probabilities"].numpy()
                    predicted.append(int(probabilities.argmax()))
            predicted = np.array(predicted)
            cells.append(f"{np.mean(predicted == truth):.3f} ({np.mean(predicted >= 0):.2f})")
        lines.append(f"| {name} | {len(items)} | {reference:.3f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return lines


def plot(results: dict[str, dict[tuple[int, int], Tally]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(FRAME_SIZES), figsize=(6 * len(FRAME_SIZES), 4.5), sharey=True)
    centres = [(low + min(high, 400)) / 2 for low, high in WIDTH_BUCKETS]
    searched = BlazeFaceDetector(confirm=False)
    for axis, size in zip(axes, FRAME_SIZES):
        for name, per_size in results.items():
            tally = per_size[size]
            axis.plot(centres, tally.found / np.maximum(tally.faces, 1), marker="o", label=name)
        axis.axvline(searched.smallest_searched(size[0]), color="gray", linestyle=":", label="smallest face searched for")
        axis.set_xscale("log")
        axis.set_xticks(centres, [bucket_name(*b) for b in WIDTH_BUCKETS], rotation=30)
        axis.minorticks_off()
        axis.set_title(f"{size[0]}x{size[1]}: recall by face width (px)")
        axis.set_ylim(0, 1.02)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("faces found")
    axes[-1].legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=Path("../shared/datasets/faces"), help="datasets' faces/ folder")
    parser.add_argument("--model", type=Path, default=None, help="exported face model (default: the newest version "
                        "in model_repository/video/, the one the model server serves)")
    parser.add_argument("--per-corpus", type=int, default=70, help="validation faces per corpus")
    parser.add_argument("--frames", type=int, default=280, help="one-face frames per frame size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a small run to try the command out (not for the report)")
    parser.add_argument("--detectors", nargs="+", metavar="WORD", help="only the detectors whose name contains one of "
                        "these words (the report is then of those only)")
    args = parser.parse_args()
    if args.quick:
        args.per_corpus, args.frames = 10, 70

    args.model = args.model or newest_version(DEFAULT_REPOSITORY, "video")
    rng = np.random.default_rng(args.seed)
    photos = backgrounds()
    validation = validation_sources(args.faces, args.per_corpus, args.seed)
    sources = registry_sources() + [source for items in validation.values() for source in items]
    print(f"{len(sources)} faces to paste: " + ", ".join(
        f"{corpus} {sum(s.corpus == corpus for s in sources)}" for corpus in dict.fromkeys(s.corpus for s in sources)
    ), flush=True)
    frames = {}
    for size in FRAME_SIZES:
        singles, multis, empties = scenes(photos, sources, size, args.frames, args.frames // 7, args.frames * 3 // 7, rng)
        frames[size] = {"one face": singles, "2-4 faces": multis, "no face": empties}

    results: dict[str, dict[tuple[int, int], Tally]] = {}
    timing: dict[str, dict[tuple[int, int], list[float]]] = {}
    chosen = {name: build for name, build in detectors().items()
              if not args.detectors or any(word in name for word in args.detectors)}
    if not chosen:
        raise SystemExit(f"no detector's name contains any of {args.detectors}: the names are {list(detectors())}")
    for name, build in chosen.items():
        detector = build()
        results[name], timing[name] = {}, {}
        for size in FRAME_SIZES:
            tallies, times = measure(detector, frames[size])
            results[name][size] = tallies
            timing[name][size] = times
            one, several, empty = tallies["one face"], tallies["2-4 faces"], tallies["no face"]
            print(f"{name} {size[0]}x{size[1]}: recall >=40 px {one.recall(40):.3f}, >=80 px {one.recall(80):.3f}, "
                  f"2-4 faces {several.recall():.3f}; false per face-free frame "
                  f"{empty.false_in_empty_frames / empty.empty_frames:.3f}; {np.median(times):.1f} ms", flush=True)

    report = write_report(args, sources, frames, results, timing)
    combined = {name: {size: merge(t["one face"], t["2-4 faces"]) for size, t in per.items()} for name, per in results.items()}
    plot(combined, REPORT_DIR / "face_detection_recall.png")
    report += ["", "## The video model on the live path's crops, by face width (640x480)", "",
               "Accuracy (not found = error), and in brackets the share of faces found, with the default detector. "
               f"Model: `{args.model}`.", ""]
    report += classify_per_width(validation, args.model, photos, rng)
    (REPORT_DIR / "face_detection.md").write_text("\n".join(report) + "\n")
    print(f"wrote {REPORT_DIR / 'face_detection.md'} and face_detection_recall.png")


def merge(a: Tally, b: Tally) -> Tally:
    return Tally(a.found + b.found, a.faces + b.faces)


def write_report(args, sources, frames, results, timing) -> list[str]:
    counts = ", ".join(f"{corpus} {sum(s.corpus == corpus for s in sources)}"
                       for corpus in dict.fromkeys(s.corpus for s in sources))
    sizes = next(iter(frames.values()))
    lines = [
        "# Face detection: recall by face width, false faces, time", "",
        __doc__.split("\n\n")[1].replace("\n", " "), "", __doc__.split("\n\n")[2].replace("\n", " "), "",
        f"Command: `.venv-ml/bin/python -m training.face_detection_benchmark` (seed {args.seed}). Faces pasted: {counts}. "
        f"Per frame size: {len(sizes['one face'])} one-face frames (widths spread evenly over the buckets), "
        f"{len(sizes['2-4 faces'])} frames of 2-4 faces of different widths under 200 px, {len(sizes['no face'])} "
        "face-free frames. Times: CPU milliseconds per frame (all threads of the process), median / p90, measured on "
        "the shared 2-core development machine while other work ran: compare detectors with each other, not with "
        "`make bench`.", "",
        "## Summary", "",
        "| detector | frame | recall >= 40 px | recall >= 80 px | recall 2-4 faces | false faces per face-free frame "
        "| face-free frames with a false face | false faces per face frame | ms per frame (median / p90) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, per_size in results.items():
        for size, tallies in per_size.items():
            one, several, empty = tallies["one face"], tallies["2-4 faces"], tallies["no face"]
            face_frames = one.face_frames + several.face_frames
            times = timing[name][size]
            lines.append(
                f"| {name} | {size[0]}x{size[1]} | {one.recall(40):.3f} | {one.recall(80):.3f} | {several.recall():.3f} "
                f"| {empty.false_in_empty_frames / empty.empty_frames:.3f} "
                f"| {empty.empty_frames_with_false / empty.empty_frames:.3f} "
                f"| {(one.false_in_face_frames + several.false_in_face_frames) / face_frames:.3f} "
                f"| {np.median(times):.1f} / {np.percentile(times, 90):.1f} |"
            )
    lines += ["", "## Recall by face width (px), one-face and 2-4-face frames together", "",
              "![recall by face width](face_detection_recall.png)", "",
              "| detector | frame | " + " | ".join(bucket_name(*b) for b in WIDTH_BUCKETS) + " |",
              "|---|---|" + "---:|" * len(WIDTH_BUCKETS)]
    for name, per_size in results.items():
        for size, tallies in per_size.items():
            both = merge(tallies["one face"], tallies["2-4 faces"])
            cells = [f"{f / n:.3f} ({n})" if n else "-" for f, n in zip(both.found, both.faces)]
            lines.append(f"| {name} | {size[0]}x{size[1]} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    main()
