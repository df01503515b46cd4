"""MediaPipe's BlazeFace (short range), run by OpenCV's DNN module: a face detector for faces within about
two metres of a camera, made for selfie and webcam framing. The default detector: it finds more held-out faces
than Haar, including turned and tilted ones, in a fraction of its time (training/reports/video/face_detectors.md,
docs/performance.md).

The network file is MediaPipe's (Apache 2.0), shipped with this package (fusion_service/features/faces/models/).

Decoding follows MediaPipe's face_detection_short_range graph: 896 SSD anchors on a 128x128 input
(strides 8, 16, 16, 16), boxes and six keypoints relative to the anchor centres, sigmoid scores, weighted
non-maximum suppression.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box, Framing, intersection_over_union
from fusion_service.features.faces.gray import require_gray
from fusion_service.features.faces.models import network_file

INPUT_SIZE = 128
_STRIDES_AND_ANCHORS = ((8, 2), (16, 6))  # anchors per cell: two layers at stride 8, four at stride 16, two each
_MODEL_FILE = "face_detection_short_range.tflite"

# Measured by training/calibrate_face_margin.py --detector blazeface: its boxes are tighter than the training
# faces and sit low on them; the margin lies between the two corpora's estimates, the shift is their mean.
# Figures: training/reports/video/face_framing.md.
BLAZEFACE_FRAMING = Framing(margin=0.09, shift=-0.11)


def anchor_centres() -> np.ndarray:
    """[896, 2] anchor centres (x, y) in [0, 1], in the network's output order."""
    centres = []
    for stride, per_cell in _STRIDES_AND_ANCHORS:
        cells = INPUT_SIZE // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        grid = (np.stack([xs, ys], axis=-1).reshape(-1, 2) + 0.5) / cells
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


class BlazeFaceDetector:
    """FaceDetector (see fusion_service.features.faces.boxes) on MediaPipe's short-range BlazeFace.

    min_score 0.5 and nms_iou 0.3 are MediaPipe's own settings for this model. min_face_fraction drops
    faces whose box is smaller than that fraction of the image's shorter side, as the Haar detector does.
    OpenCV's network object is not safe to share between threads: calls are serialised with a lock.
    """

    def __init__(
        self,
        *,
        min_score: float = 0.5,
        nms_iou: float = 0.3,
        min_face_fraction: float = 0.1,
        model_path: str | Path | None = None,
    ) -> None:
        if not 0.0 < min_score < 1.0:
            raise ValueError(f"min_score must be between 0 and 1, got {min_score}")
        if not 0.0 < nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        if not 0.0 <= min_face_fraction < 1.0:
            raise ValueError(f"min_face_fraction must be in [0, 1), got {min_face_fraction}")
        path = Path(model_path) if model_path is not None else network_file(_MODEL_FILE)
        if not path.is_file():
            raise RuntimeError(f"BlazeFace network file not found: {path}: pass the path of an existing .tflite file")
        self._net = cv2.dnn.readNetFromTFLite(str(path))
        self._outputs = ["classificators", "regressors"]
        self._anchors = anchor_centres()
        self._lock = threading.Lock()
        self.framing = BLAZEFACE_FRAMING
        self._logit_threshold = float(np.log(min_score / (1.0 - min_score)))
        self.min_score, self.nms_iou, self.min_face_fraction = min_score, nms_iou, min_face_fraction

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Faces in a uint8 gray image, in its pixel coordinates, largest first."""
        require_gray(gray)
        height, width = gray.shape
        scale = INPUT_SIZE / max(height, width)  # letterbox: keep the aspect ratio, pad the short side
        small = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        pad_y, pad_x = (INPUT_SIZE - small.shape[0]) // 2, (INPUT_SIZE - small.shape[1]) // 2
        square = np.zeros((INPUT_SIZE, INPUT_SIZE), np.float32)
        square[pad_y : pad_y + small.shape[0], pad_x : pad_x + small.shape[1]] = small * (2.0 / 255.0) - 1.0
        blob = np.broadcast_to(square, (1, 3, INPUT_SIZE, INPUT_SIZE))  # gray as RGB, NCHW in [-1, 1]
        with self._lock:
            self._net.setInput(np.ascontiguousarray(blob))
            scores, regressors = self._net.forward(self._outputs)
        logits, raw = scores.reshape(-1), regressors.reshape(-1, 16)
        keep = logits > self._logit_threshold
        if not keep.any():
            return []
        anchors = self._anchors[keep]
        centres = anchors + raw[keep, :2] / INPUT_SIZE
        sizes = raw[keep, 2:4] / INPUT_SIZE
        eyes = np.concatenate([anchors, anchors], axis=1) + raw[keep, 4:8] / INPUT_SIZE  # both eyes' x, y
        corners = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)  # x0, y0, x1, y1 in [0, 1]
        merged = weighted_nms(np.concatenate([corners, eyes], axis=1), 1.0 / (1.0 + np.exp(-logits[keep])),
                              self.nms_iou)
        # Back from the letterboxed square to the image's pixels.
        pixels = (merged * INPUT_SIZE - np.tile([pad_x, pad_y], 4)) / scale
        min_side = self.min_face_fraction * min(height, width)
        found = []
        for x0, y0, x1, y1, *eye_points in pixels:
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
            if min(x1 - x0, y1 - y0) >= max(1.0, min_side):
                found.append(Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0), roll=eye_line_roll(eye_points)))
        return sorted(found, key=lambda box: box.area, reverse=True)


def eye_line_roll(eye_points: list[float]) -> float:
    """Degrees, clockwise on screen, of the line from the eye on the image's left to the other. The
    short-range model's eye points lag behind large rolls (measured on a portrait: 20 degrees read as
    10-25), so this tells the direction and rough size of a roll, not its exact angle."""
    (ax, ay), (bx, by) = sorted([(eye_points[0], eye_points[1]), (eye_points[2], eye_points[3])])
    return round(float(np.degrees(np.arctan2(by - ay, bx - ax))), 1)


def weighted_nms(corners: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """MediaPipe's weighted non-maximum suppression: each kept box is the score-weighted mean of the boxes
    that overlap the best remaining one by more than iou_threshold. Rows are x0, y0, x1, y1 and then any
    values averaged with them (keypoints)."""
    order = np.argsort(-scores)
    corners, scores = corners[order], scores[order]
    merged = []
    remaining = np.arange(len(scores))
    while remaining.size:
        iou = intersection_over_union(corners[remaining[0], :4], corners[remaining, :4])
        overlapping = remaining[iou > iou_threshold]
        weights = scores[overlapping]
        merged.append((corners[overlapping] * weights[:, None]).sum(axis=0) / weights.sum())
        remaining = remaining[iou <= iou_threshold]
    return np.asarray(merged, dtype=np.float32).reshape(-1, corners.shape[1])
