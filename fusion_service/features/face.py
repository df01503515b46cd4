"""Face detection, cropping and normalisation shared by the live service, training and evaluation.

Every face the video model sees goes through `face_crop`, so a webcam face and a training
face (FER2013 / CK+48) are framed, sized and scaled the same way.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

FACE_SIZE = 48


@dataclass(frozen=True)
class Framing:
    """How to turn a detector's box into a training-like crop: `margin` of the box's side added on each side,
    and the crop's centre moved down by `shift` box sides (negative: up). Each detector frames faces its own
    way, so each carries the framing measured for it by training/calibrate_face_margin.py.

    Rolled faces: FER2013's training faces are not aligned, and training augments with rotations up to
    18 degrees, so a small roll is left as it is. On the held-out faces of training/compare_face_detectors.py
    (BlazeFace, video model of epoch 27), turned upright only beyond 12 degrees: untilted FER2013 0.599 ->
    0.595, CK+48 0.899 -> 0.899; tilted by +-20 degrees FER2013 0.595 / 0.579 -> 0.590 / 0.606, CK+48
    0.826 / 0.865 -> 0.884 / 0.884. Turning every face upright cost 0.6 and 2.0 points on untilted faces."""

    margin: float = 0.0
    shift: float = 0.0
    upright_beyond_degrees: float = 12.0  # a face rolled further than this is turned upright before cropping

    def roll_for(self, box: "Box") -> float:
        """The turn face_crop gives this box: small rolls are left alone, as in the training faces."""
        return box.roll if abs(box.roll) > self.upright_beyond_degrees else 0.0


# Haar: measured by training/calibrate_face_margin.py --detector haar (48 px images upscaled to 192 px and
# given replicated-edge context; seed 0):
#   FER2013: detected 264/400, box side / image side median 0.987 (IQR 0.927-1.042) -> margin +0.007
#   CK+48:   detected 398/400, box side / image side median 1.031 (IQR 1.010-1.052) -> margin -0.015
#   mean -0.004; box centres lie within 1.3% of the image centre, so no shift. Re-cropping the detected boxes
#   is closest to the originals at margin 0 (median abs difference 18.7 / 14.1 gray levels, vs 22.9 / 27.0
#   at +0.05). Without the context the detector cannot return a box larger than the image and reads about
#   0.85 whatever the framing (a margin of 0.09 that was an artefact).
HAAR_FRAMING = Framing(margin=0.0, shift=0.0)

_CASCADE_FILE = "haarcascade_frontalface_default.xml"
_CASCADE_WINDOW = 24  # the frontal-face cascade's own window: no smaller face can be found


@dataclass(frozen=True)
class Box:
    """Axis-aligned face box in pixel coordinates of the full-resolution image, and the face's roll: the angle
    in degrees of the line from the eye on the image's left to the other, clockwise on screen (0: upright;
    detectors that cannot tell leave it 0)."""

    x: int
    y: int
    width: int
    height: int
    roll: float = 0.0

    @property
    def area(self) -> int:
        return self.width * self.height


class FaceDetector(Protocol):
    """Anything that finds faces: returns boxes in the image's pixel coordinates, largest first, and says how
    its boxes are framed."""

    framing: Framing

    def detect(self, gray: np.ndarray) -> list[Box]: ...


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

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Faces in a uint8 gray image, in its full-resolution coordinates, largest first."""
        require_gray(gray)
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


def require_gray(gray: np.ndarray) -> None:
    if not isinstance(gray, np.ndarray) or gray.ndim != 2 or gray.dtype != np.uint8 or gray.size == 0:
        described = f"{gray.dtype} {gray.shape}" if isinstance(gray, np.ndarray) else type(gray).__name__
        raise ValueError(f"expected a non-empty 2-D uint8 gray image (convert with to_gray), got {described}")


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 gray image from a gray, BGR or BGRA uint8 image (OpenCV channel order)."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected a numpy image array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}: convert it to uint8 (0-255) first")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected an image [H, W], [H, W, 3] (BGR) or [H, W, 4] (BGRA), got shape {image.shape}")
    if image.ndim == 2:
        return np.ascontiguousarray(image)
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ValueError(f"expected 1, 3 (BGR) or 4 (BGRA) channels, got shape {image.shape}")


def face_crop(
    gray: np.ndarray, box: Box, *, margin: float = 0.0, shift: float = 0.0, roll: float = 0.0, size: int = FACE_SIZE
) -> np.ndarray:
    """Square crop around `box`, widened by `margin` of its size on each side, moved down the face by `shift`
    of its size and turned by `roll` degrees (a face rolled that far comes out upright), as float32
    [size, size, 1] in [0, 1].

    Where the square leaves the image, edge pixels are replicated, so faces at the border keep
    their framing instead of being shifted or squeezed.
    """
    require_gray(gray)
    if box.width <= 0 or box.height <= 0:
        raise ValueError(f"face box must have a positive size, got {box}")
    if margin <= -0.5:
        raise ValueError(f"margin must be > -0.5 (it is a fraction of the box per side), got {margin}")
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    box_side = max(box.width, box.height)
    side = max(1, round(box_side * (1.0 + 2.0 * margin)))
    # The crop's centre: the box's, moved along the face's own downward direction.
    centre_x = box.x + box.width / 2 - np.sin(np.deg2rad(roll)) * shift * box_side
    centre_y = box.y + box.height / 2 + np.cos(np.deg2rad(roll)) * shift * box_side
    if roll == 0.0:
        top, left = round(centre_y - side / 2), round(centre_x - side / 2)
        rows = np.clip(np.arange(top, top + side), 0, gray.shape[0] - 1)
        cols = np.clip(np.arange(left, left + side), 0, gray.shape[1] - 1)
        square = gray[np.ix_(rows, cols)]
    else:
        # Turn the face upright about the crop's centre at full resolution, then resize as above.
        turn = cv2.getRotationMatrix2D((centre_x, centre_y), roll, 1.0)
        turn[:, 2] += (side / 2 - centre_x, side / 2 - centre_y)
        square = cv2.warpAffine(gray, turn, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (size, size), interpolation=interpolation)
    return (resized.astype(np.float32) / 255.0)[:, :, np.newaxis]


DETECTOR_NAMES = ("blazeface", "haar")
DEFAULT_DETECTOR = "blazeface"


def make_detector(name: str = DEFAULT_DETECTOR) -> FaceDetector:
    """A face detector by name. BlazeFace is the default: on held-out faces set in a larger image it found 97%
    of FER2013 faces where Haar found 68%, at about a third of Haar's time (docs/performance.md)."""
    if name == "haar":
        return HaarFaceDetector()
    if name == "blazeface":
        from fusion_service.features.blazeface import BlazeFaceDetector  # it builds on this module's Box

        return BlazeFaceDetector()
    raise ValueError(f"unknown face detector {name!r}: choose one of {', '.join(DETECTOR_NAMES)}")


class FacePipeline:
    """Image in, normalised face crops out: the one path from pixels to the video model's input."""

    def __init__(self, detector: FaceDetector | None = None) -> None:
        self.detector = detector if detector is not None else make_detector()

    def faces(self, image: np.ndarray) -> tuple[list[Box], np.ndarray]:
        """Boxes (largest first) and their crops float32 [N, 48, 48, 1] for a full frame; N may be 0."""
        gray = to_gray(image)
        boxes = self.detector.detect(gray)
        if not boxes:
            return [], np.zeros((0, FACE_SIZE, FACE_SIZE, 1), dtype=np.float32)
        framing = self.detector.framing
        crops = [face_crop(gray, box, margin=framing.margin, shift=framing.shift, roll=framing.roll_for(box))
                 for box in boxes]
        return boxes, np.stack(crops)

    def face_image(self, image: np.ndarray) -> np.ndarray:
        """Crop [48, 48, 1] of an image that already is a face crop (FER2013, CK+48), not re-detected."""
        gray = to_gray(image)
        whole = Box(0, 0, gray.shape[1], gray.shape[0])
        return face_crop(gray, whole, margin=0.0)
