"""OpenCV's frontal-face Haar cascade: the detector to choose where BlazeFace's network file cannot be used."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box, Framing
from fusion_service.features.faces.gray import to_gray

# Measured by training/calibrate_face_margin.py --detector haar: its boxes already frame the training faces
# (margin within 0.02 of 0, centres within 1.3% of the image's), and re-cropping them is closest to the
# originals at margin 0. Figures: training/reports/video/face_framing.md.
HAAR_FRAMING = Framing(margin=0.0, shift=0.0)

_CASCADE_FILE = "haarcascade_frontalface_default.xml"
_CASCADE_WINDOW = 24  # the frontal-face cascade's own window: no smaller face can be found


def _default_cascade_path() -> Path:
    haar_dir = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if haar_dir is None:
        raise RuntimeError(
            f"OpenCV {cv2.__version__} ships no Haar cascades (cv2.data.haarcascades is missing; "
            "OpenCV 5 dropped them): install opencv-python-headless<5, or pass cascade_path="
        )
    return Path(haar_dir) / _CASCADE_FILE


class HaarFaceDetector:
    """OpenCV's frontal-face Haar cascade, run on a downscaled copy of the frame for speed.

    The cascade's cost grows with the number of windows it scans, so the defaults trade reach for
    speed: the longest side is scaled down to `max_side` and faces smaller than
    `min_face_fraction` of the shorter side are not searched for (0.2 of a 480 px frame = 96 px,
    a user within about a metre of a laptop webcam). Lower them for people further away; faces
    are found reliably from about 1.2 times the minimum. HAAR_FRAMING was measured with these
    defaults: after changing them, re-run training/calibrate_face_margin.py.
    The cascade object keeps per-call state, so calls are serialised with a lock; use one
    detector per worker thread if detection must run in parallel.
    """

    def __init__(
        self,
        *,
        scale_factor: float = 1.2,
        min_neighbors: int = 5,
        min_face_fraction: float = 0.2,
        max_side: int = 240,
        cascade_path: str | Path | None = None,
    ) -> None:
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor must be > 1 (e.g. 1.1), got {scale_factor}")
        if min_neighbors < 0:
            raise ValueError(f"min_neighbors must be >= 0, got {min_neighbors}")
        if not 0.0 <= min_face_fraction < 1.0:
            raise ValueError(f"min_face_fraction must be in [0, 1), got {min_face_fraction}")
        if max_side < _CASCADE_WINDOW:
            raise ValueError(f"max_side must be >= {_CASCADE_WINDOW} px, got {max_side}")
        path = Path(cascade_path) if cascade_path is not None else _default_cascade_path()
        if not path.is_file():
            raise RuntimeError(
                f"Haar cascade file not found: {path}. Install opencv-python-headless<5 "
                "(it bundles the cascades) or pass an existing cascade_path"
            )
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise RuntimeError(f"OpenCV could not load the Haar cascade {path}: is it a cascade XML file?")
        self._lock = threading.Lock()
        self.framing = HAAR_FRAMING
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_face_fraction = min_face_fraction
        self.max_side = max_side

    def detect(self, image: np.ndarray, *, confirm: bool = True, deep: bool = True, everyone: bool = False
               ) -> list[Box]:
        """Faces in a uint8 gray or BGR image, in its full-resolution coordinates, largest first (Haar has no
        second check and searches every scale in one call, so `confirm`, `deep` and `everyone` change nothing)."""
        gray = to_gray(image)
        height, width = gray.shape
        scale = self.max_side / max(height, width)
        small = gray
        if scale < 1.0:
            small_size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = cv2.resize(gray, small_size, interpolation=cv2.INTER_AREA)
        scale_x, scale_y = width / small.shape[1], height / small.shape[0]
        min_side = max(_CASCADE_WINDOW, round(self.min_face_fraction * min(small.shape[:2])))
        with self._lock:
            found = self._cascade.detectMultiScale(
                small,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(min_side, min_side),
            )
        boxes = [
            Box(round(x * scale_x), round(y * scale_y), round(w * scale_x), round(h * scale_y))
            for x, y, w, h in np.asarray(found, dtype=np.int64).reshape(-1, 4)
        ]
        return sorted(boxes, key=lambda box: box.area, reverse=True)
