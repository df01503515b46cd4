"""MediaPipe's BlazeFace, run by LiteRT (network.py): the short-range network (the default) searched over a scale
pyramid so that it finds faces from 40 px (3% of the width in larger frames) up to the whole frame, and the
full-range network.

The network files are MediaPipe's (Apache 2.0), shipped with this package (fusion_service/features/faces/models/).

Why a pyramid of the short-range network: its layers are all convolutions, so it runs on an input of any size
(a multiple of 16), but it finds a face reliably only while the face is about 32-128 px of its input (on the
detection benchmark's faces, at MediaPipe's score threshold: half of them at 20 px, 90% from 32 px, few above
its own input; blurred faces, such as small photographs enlarged, score under 0.5 until they are 40-50 px). So
the frame is searched at several scales, each `scale_step` from the next, from the whole frame letterboxed into
128x128 down to the scale that makes the smallest face searched 32 px; each pass keeps the faces of its band.
The finest pass costs most (its input has the most pixels). The full-range network (192x192, "up to 5 m") is
run on its own input size only; it finds fewer faces than the pyramid (training/reports/video/face_detection.md).

Decoding follows MediaPipe's graphs: SSD anchors at the centres of the output cells (short range: strides 8
and 16 with 2 and 6 anchors per cell; full range: stride 4, one), boxes and six keypoints in input pixels
relative to the anchor centres, sigmoid scores, weighted non-maximum suppression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box, Framing, intersection_over_union
from fusion_service.features.faces.mesh import MIN_PRESENCE, FaceMesh
from fusion_service.features.faces.models import network_file
from fusion_service.features.faces.network import TfliteNetwork

_INPUT_MULTIPLE = 16  # the coarsest stride: an input side must be a multiple of it


# Measured by training/calibrate_face_margin.py --detector blazeface (the search of issue 14's second round): its
# boxes are tighter than the training faces and sit low on them; the margin lies between the two corpora's
# estimates, the shift is their mean. Figures: training/reports/video/face_framing.md.
BLAZEFACE_FRAMING = Framing(margin=0.09, shift=-0.10)

# The largest pass input, in pixels, that still runs once a face has been found. 0: the search ends at the first
# pass with a confirmed face, because going on costs every whole-frame search with someone near the camera several
# times over (`make bench` at fe424b1: face_ms 6.8 -> 48.7 ms at 640x480, Fuse p50 30 -> 66 ms, 8 browser streams
# no longer held) for the people further away beside them (2-4-face recall 0.52 -> 0.80 at 640x480); scenes of
# several people at different distances choose blazeface-every-scale (training/reports/video/face_detection.md).
MAX_PIXELS_AFTER_FACE = 0


@dataclass(frozen=True)
class BlazeFaceModel:
    """One BlazeFace network: its file in the package, its input side, its anchor layout, and whether it is run
    on inputs of other sizes (the full-range network's anchors are laid out for its own size only)."""

    file: str
    input_size: int
    anchor_layers: tuple[tuple[int, int], ...]  # (stride, anchors per cell), in the network's output order
    any_input_size: bool
    min_support: int  # anchors a detection must be merged from: see BlazeFaceDetector


SHORT_RANGE = BlazeFaceModel("face_detection_short_range.tflite", 128, ((8, 2), (16, 6)), True, min_support=3)
FULL_RANGE = BlazeFaceModel("face_detection_full_range.tflite", 192, ((4, 1),), False, min_support=1)


def anchor_centres(
    height: int, width: int, layers: tuple[tuple[int, int], ...] = SHORT_RANGE.anchor_layers
) -> np.ndarray:
    """[n, 2] anchor centres (x, y) in input pixels for an input of height x width, in the network's output order."""
    centres = []
    for stride, per_cell in layers:
        ys, xs = np.meshgrid(np.arange(height // stride), np.arange(width // stride), indexing="ij")
        grid = (np.stack([xs, ys], axis=-1).reshape(-1, 2) + 0.5) * stride
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class BlazeFaceDetector:
    """FaceDetector (see fusion_service.features.faces.boxes) on MediaPipe's BlazeFace.

    The passes (`scales`, with `multi_scale`; the short-range network only) go from the whole frame letterboxed
    into the network's input to the frame scaled so that `smallest_face` (pixels, or `smallest_face_fraction` of
    the width where that is larger: the share keeps the cost of full-HD frames bounded) is `reliable_face` px.
    Passes run coarsest first, and the detections of all passes run are merged (weighted non-maximum
    suppression across passes). Once a pass has given a confirmed face, the finer passes still look for other
    people further away, but only those whose input has at most `max_pixels_after_face` pixels (the cost of a
    pass follows its pixels). The default, 0, stops at the first pass with a confirmed face (see
    MAX_PIXELS_AFTER_FACE); 640 * 480 would search a 640x480 frame down to its smallest faces and leave out only
    the finest pass of a 1280x720 frame with someone near; None runs every pass always. Boxes smaller than half the smallest face searched for are
    dropped, and so are those merged from fewer anchors than the model's `min_support` (short range: false faces
    in the benchmark's and the tests' frames came from one or two anchors scoring about 0.5, real faces of every
    size from four or more; the full-range model has one anchor per cell and gives a face two or three). With
    `confirm`, a detection is kept only if MediaPipe's face-landmark network gives it a face-presence score of
    `min_presence` (mesh.py).
    min_score 0.5 and nms_iou 0.3 are MediaPipe's own settings; the other defaults were chosen on the detection
    benchmark (training/reports/video/face_detection_settings.md).
    """

    def __init__(
        self,
        *,
        model: BlazeFaceModel = SHORT_RANGE,
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        smallest_face: int = 40,
        smallest_face_fraction: float = 0.03,
        reliable_face: int = 32,
        scale_step: float = 3.0,
        min_presence: float = MIN_PRESENCE,
        multi_scale: bool = True,
        max_pixels_after_face: int | None = MAX_PIXELS_AFTER_FACE,
        confirm: bool = True,
        model_path: str | Path | None = None,
    ) -> None:
        if not 0.0 < min_score < 1.0:
            raise ValueError(f"min_score must be between 0 and 1, got {min_score}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if smallest_face < 1:
            raise ValueError(f"smallest_face must be at least 1 px, got {smallest_face}")
        if not 0.0 <= smallest_face_fraction < 1.0:
            raise ValueError(f"smallest_face_fraction must be in [0, 1), got {smallest_face_fraction}")
        if not 0 < reliable_face <= model.input_size:
            raise ValueError(f"reliable_face must be between 1 and {model.input_size} px, got {reliable_face}")
        if scale_step <= 1.0:
            raise ValueError(f"scale_step must be above 1, got {scale_step}")
        if not 0.0 <= min_presence < 1.0:
            raise ValueError(f"min_presence must be in [0, 1), got {min_presence}")
        if max_pixels_after_face is not None and max_pixels_after_face < 0:
            raise ValueError(f"max_pixels_after_face must be a pixel count >= 0 or None, got {max_pixels_after_face}")
        self._network = TfliteNetwork(Path(model_path) if model_path is not None else network_file(model.file))
        self._anchors: dict[tuple[int, int], np.ndarray] = {}
        self.model = model
        self.framing = BLAZEFACE_FRAMING
        self._logit_threshold = float(np.log(min_score / (1.0 - min_score)))
        self.min_score, self.nms_iou = min_score, nms_iou
        self.smallest_face, self.smallest_face_fraction = smallest_face, smallest_face_fraction
        self.reliable_face, self.scale_step = reliable_face, scale_step
        self.min_presence = min_presence
        self.multi_scale = multi_scale and model.any_input_size
        self.max_pixels_after_face = max_pixels_after_face
        self._mesh = FaceMesh() if confirm else None

    def smallest_searched(self, width: int) -> float:
        """The narrowest face, in pixels, searched for in a frame of this width."""
        return max(float(self.smallest_face), self.smallest_face_fraction * width)

    def scales(self, height: int, width: int) -> list[float]:
        """The passes' scales, coarsest first: the whole frame letterboxed into the network's input, then finer
        passes `scale_step` apart down to the one where the smallest face searched is `reliable_face` px."""
        coarsest = self.model.input_size / max(height, width)
        finest = min(1.0, self.reliable_face / self.smallest_searched(width))
        if not self.multi_scale or finest <= coarsest:
            return [coarsest]
        finer = [finest]
        # A pass less than sqrt(scale_step) finer than the whole frame's adds little to that one.
        while finer[-1] / self.scale_step > coarsest * np.sqrt(self.scale_step):
            finer.append(finer[-1] / self.scale_step)
        return [coarsest] + finer[::-1]

    def detect(self, image: np.ndarray, *, confirm: bool = True, deep: bool = True, everyone: bool = False
               ) -> list[Box]:
        """Faces in a uint8 gray or BGR image, in its pixel coordinates, largest first. `confirm=False` skips the
        face-presence check for this call (a close look around a face already confirmed), `deep=False` runs the
        coarsest pass only (a stream with nobody in view, between its whole-frame searches), `everyone=True` runs
        the passes after a face too, for other faces (a stream's search for everyone at intervals): search.py."""
        rgb = _as_rgb(image)
        height, width = rgb.shape[:2]
        smallest = self.smallest_searched(width)
        scales = self.scales(height, width) if deep else self.scales(height, width)[:1]
        rows: list[np.ndarray] = []
        faces: list[Box] = []
        presence: dict[Box, float] = {}  # this call's FaceMesh looks: a box a finer pass left as it was needs none
        for index, scale in enumerate(scales):
            if faces and not self._runs_after_face(height, width, scale):
                return self._with_others(rgb, faces, scales[index:], smallest, confirm, presence) if everyone else faces
            rows.append(self._letterboxed(rgb, scale) if index == 0 else self._scaled(rgb, scale))
            faces = self._confirmed(rgb, self._merged(rows, height, width, smallest), confirm, presence)
        return faces

    def _with_others(self, rgb: np.ndarray, faces: list[Box], scales: list[float], smallest: float, confirm: bool,
                     presence: dict[Box, float]) -> list[Box]:
        """`faces` and the faces the finer passes at `scales` find that are none of them (people further away). The
        faces found already keep their boxes, so that a stream's boxes of a face stay those of its other searches."""
        height, width = rgb.shape[:2]
        finer = self._merged([self._scaled(rgb, scale) for scale in scales], height, width, smallest)
        others = [box for box in finer if all(box.overlap(face) < self.nms_iou for face in faces)]
        return sorted(faces + self._confirmed(rgb, others, confirm, presence), key=lambda box: box.area, reverse=True)

    def _runs_after_face(self, height: int, width: int, scale: float) -> bool:
        """Whether the pass at `scale` still runs once a face has been found: within max_pixels_after_face."""
        if self.max_pixels_after_face is None:
            return True
        return _padded_side(height * scale) * _padded_side(width * scale) <= self.max_pixels_after_face

    def _confirmed(self, rgb: np.ndarray, boxes: list[Box], confirm: bool, presence: dict[Box, float]) -> list[Box]:
        """The boxes FaceMesh says show a face (all of them without `confirm`)."""
        if self._mesh is None or not confirm:
            return boxes
        for box in boxes:
            if box not in presence:
                presence[box] = self._mesh.look(rgb, box).presence
        return [box for box in boxes if presence[box] >= self.min_presence]

    def _merged(self, rows: list[np.ndarray], height: int, width: int, smallest: float) -> list[Box]:
        """The passes' detections merged into boxes, largest first."""
        found = np.concatenate(rows)
        if not len(found):
            return []
        merged, support = weighted_nms(found[:, :-1], found[:, -1], self.nms_iou)
        boxes = []
        for x0, y0, x1, y1, *eye_points in merged[support >= self.model.min_support]:
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
            if min(x1 - x0, y1 - y0) >= smallest / 2:
                boxes.append(Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0), roll=eye_line_roll(eye_points)))
        return sorted(boxes, key=lambda box: box.area, reverse=True)

    def _letterboxed(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        """The network's own square input: the frame scaled to fit, centred, padded."""
        size = self.model.input_size
        small = _resized(rgb, scale)
        pad_y, pad_x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
        return self._run(small, (size, size), (pad_x, pad_y), scale)

    def _scaled(self, rgb: np.ndarray, scale: float) -> np.ndarray:
        """The frame scaled by `scale`, padded on the right and bottom to a size the network takes; faces wider
        than the network's own input are left to a coarser pass, which sees them whole."""
        small = _resized(rgb, scale)
        padded = tuple(_padded_side(side) for side in small.shape[:2])
        rows = self._run(small, padded, (0, 0), scale)
        return rows[(rows[:, 2] - rows[:, 0]) * scale <= self.model.input_size]

    def _run(self, small: np.ndarray, input_shape: tuple[int, int], offset: tuple[int, int], scale: float) -> np.ndarray:
        """Decoded detections [n, 9] (x0, y0, x1, y1, both eyes' x and y, score) in the frame's pixels."""
        height, width = input_shape
        pad_x, pad_y = offset
        canvas = np.zeros((height, width, 3), np.float32)  # 0: mid-gray once scaled to [-1, 1]
        canvas[pad_y : pad_y + small.shape[0], pad_x : pad_x + small.shape[1]] = small * (2.0 / 255.0) - 1.0
        # Scores have one value per anchor, regressors 16 (box and six keypoints): told apart by that.
        scores, regressors = sorted(self._network.run(canvas[np.newaxis]), key=lambda output: output.shape[-1])
        logits, raw = scores.reshape(-1), regressors.reshape(-1, 16)
        keep = logits > self._logit_threshold
        if not keep.any():
            return np.zeros((0, 9), np.float32)
        anchors = self._anchor_grid(height, width)[keep]
        centres, sizes = anchors + raw[keep, :2], raw[keep, 2:4]
        eyes = np.concatenate([anchors, anchors], axis=1) + raw[keep, 4:8]
        corners = np.concatenate([centres - sizes / 2, centres + sizes / 2, eyes], axis=1)
        pixels = (corners - np.tile([pad_x, pad_y], 4)) / scale  # back to the frame's pixels
        return np.concatenate([pixels, 1.0 / (1.0 + np.exp(-logits[keep, np.newaxis]))], axis=1)

    def _anchor_grid(self, height: int, width: int) -> np.ndarray:
        key = (height, width)
        if key not in self._anchors:
            self._anchors[key] = anchor_centres(height, width, self.model.anchor_layers)
        return self._anchors[key]


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """RGB uint8 from gray or BGR uint8: colour helps the network (faces of 20 px in its input are found in colour,
    24 px in gray)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0 or image.ndim not in (2, 3):
        described = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"expected a non-empty uint8 gray [H, W] or BGR [H, W, 3] image, got {described}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] != 3:
        raise ValueError(f"expected a gray or BGR image (convert BGRA with cv2.cvtColor), got shape {image.shape}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _padded_side(side: float) -> int:
    """An input side the network takes: `side` rounded as _resized rounds it, padded up to a multiple of 16."""
    return -(-max(1, round(side)) // _INPUT_MULTIPLE) * _INPUT_MULTIPLE


def _resized(image: np.ndarray, scale: float) -> np.ndarray:
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)


def eye_line_roll(eye_points: list[float]) -> float:
    """Degrees, clockwise on screen, of the line from the eye on the image's left to the other. The
    short-range model's eye points lag behind large rolls (measured on a portrait: 20 degrees read as
    10-25), so this tells the direction and rough size of a roll, not its exact angle."""
    (ax, ay), (bx, by) = sorted([(eye_points[0], eye_points[1]), (eye_points[2], eye_points[3])])
    return round(float(np.degrees(np.arctan2(by - ay, bx - ax))), 1)


def weighted_nms(corners: np.ndarray, scores: np.ndarray, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's weighted non-maximum suppression: each kept box is the score-weighted mean of the boxes
    that overlap the best remaining one by more than iou_threshold. Rows are x0, y0, x1, y1 and then any
    values averaged with them (keypoints). Returns the kept rows and how many boxes each was merged from."""
    order = np.argsort(-scores)
    corners, scores = corners[order], scores[order]
    merged, support = [], []
    remaining = np.arange(len(scores))
    while remaining.size:
        iou = intersection_over_union(corners[remaining[0], :4], corners[remaining, :4])
        overlapping = remaining[iou > iou_threshold]
        weights = scores[overlapping]
        merged.append((corners[overlapping] * weights[:, None]).sum(axis=0) / weights.sum())
        support.append(len(overlapping))
        remaining = remaining[iou <= iou_threshold]
    return np.asarray(merged, dtype=np.float32).reshape(-1, corners.shape[1]), np.asarray(support, dtype=np.int64)
