"""What every face detector returns and how its boxes are framed: the contract between detectors, the crop
and the service."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


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

    @property
    def corners(self) -> np.ndarray:
        """x0, y0, x1, y1, as `intersection_over_union` takes them."""
        return np.array([self.x, self.y, self.x + self.width, self.y + self.height], dtype=np.float64)

    def overlap(self, other: Box) -> float:
        """Intersection over union with another box: 0 apart, 1 identical."""
        return float(intersection_over_union(self.corners, other.corners))


def intersection_over_union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes given as corners [..., 4] (x0, y0, x1, y1), broadcast against each
    other (one box against many, or pairwise); 0 for boxes apart or of no area."""
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    shared = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return shared / np.maximum(area_a + area_b - shared, 1e-9)


@dataclass(frozen=True)
class Framing:
    """How to turn a detector's box into a training-like crop: `margin` of the box's side added on each side,
    and the crop's centre moved down by `shift` box sides (negative: up). Each detector frames faces its own
    way, so each carries the framing measured for it by training/calibrate_face_margin.py.

    Rolled faces are turned upright only beyond `upright_beyond_degrees`: training faces are not aligned (and
    are augmented with rotations up to 18 degrees), so turning every face upright cost accuracy on untilted
    faces (training/reports/video/face_framing.md)."""

    margin: float = 0.0
    shift: float = 0.0
    upright_beyond_degrees: float = 12.0

    def roll_for(self, box: Box) -> float:
        """The turn face_crop gives this box: small rolls are left alone, as in the training faces."""
        return box.roll if abs(box.roll) > self.upright_beyond_degrees else 0.0


class FaceDetector(Protocol):
    """Anything that finds faces in a uint8 gray or BGR image: returns boxes in the image's pixel coordinates,
    largest first, and says how its boxes are framed. Colour is passed on because it helps some detectors.
    `confirm=False` lets a detector that checks its detections a second time skip that check, where the caller
    already knows the face (a stream looking around the face of its last frame). `deep=False` asks a detector
    that searches several scales for its quickest look only (faces near the camera), where the caller searches
    deeply at intervals (a stream with nobody in view). `everyone=True` asks a detector that stops at the first
    scale where it finds a face to search every scale (people further away than the one it found), where the
    cost is shared by many frames (a stream's search for everyone at intervals)."""

    framing: Framing

    def detect(self, image: np.ndarray, *, confirm: bool = True, deep: bool = True, everyone: bool = False
               ) -> list[Box]: ...
