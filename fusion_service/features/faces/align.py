"""Eye alignment: crops turned so the eyes are level and scaled by their distance, from MediaPipe's face mesh.

BlazeFace's eye keypoints lag behind large rolls (blazeface.eye_line_roll), so they only decide whether a face is
turned upright; the 468-point face landmark network places the eyes well enough to set rotation, scale and
position of the crop. Training faces and live faces go through `aligned_crop` alike, with one EyeFraming.
The network and its input region are mesh.py's (which runs it on every BlazeFace detection for its
face-presence score): adopting alignment should take the eyes from that same forward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.crop import FACE_SIZE
from fusion_service.features.faces.gray import require_gray
from fusion_service.features.faces.mesh import FaceMesh

# Mesh indices of each eye's outer and inner corner (the image's left eye first in a frontal face).
EYE_CORNERS = ((33, 133), (362, 263))


@dataclass(frozen=True)
class EyeFraming:
    """Where the eyes land in an aligned crop, as fractions of its side."""

    eye_distance: float  # between the two eye centres
    eye_height: float  # of the eyes' midpoint, from the top (it sits at mid-width)

    def __post_init__(self) -> None:
        if not 0.0 < self.eye_distance < 1.0 or not 0.0 < self.eye_height < 1.0:
            raise ValueError(f"eye_distance and eye_height must be fractions in (0, 1), got {self}")


class FaceLandmarker:
    """Eye centres of a face from MediaPipe's face landmark network (mesh.py)."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        self._mesh = FaceMesh(model_path)

    def eyes(self, image: np.ndarray, box: Box) -> np.ndarray:
        """[[x, y] of the eye on the image's left, [x, y] of the other] in image pixels, for the face in `box`
        of a uint8 gray or BGR image."""
        rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB if image.ndim == 2 else cv2.COLOR_BGR2RGB)
        points = self._mesh.look(rgb, box).points
        centres = np.array([points[list(corners)].mean(axis=0) for corners in EYE_CORNERS])
        return centres[np.argsort(centres[:, 0])]


def eye_geometry(eyes: np.ndarray, side: float) -> tuple[float, float]:
    """(eye distance, eyes' midpoint height) as fractions of a crop of `side` pixels whose eyes are at `eyes`."""
    return float(np.linalg.norm(eyes[1] - eyes[0]) / side), float(eyes[:, 1].mean() / side)


def aligned_crop(gray: np.ndarray, eyes: np.ndarray, framing: EyeFraming, size: int = FACE_SIZE) -> np.ndarray:
    """float32 [size, size, 1] in [0, 1]: the eyes level, `framing.eye_distance` of the side apart, their midpoint
    at mid-width and `framing.eye_height` down; edge pixels are replicated where the square leaves the image."""
    require_gray(gray)
    left, right = np.asarray(eyes, dtype=np.float64)
    distance = float(np.hypot(*(right - left)))
    if distance <= 0:
        raise ValueError(f"the two eye positions must differ, got {eyes}")
    angle = float(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0])))
    # Work at full resolution (a side of `side` pixels), then resize: area averaging, as face_crop does.
    side = max(size, round(distance / framing.eye_distance))
    midpoint = (left + right) / 2
    turn = cv2.getRotationMatrix2D((float(midpoint[0]), float(midpoint[1])), angle, side * framing.eye_distance / distance)
    turn[:, 2] += (side / 2 - midpoint[0], side * framing.eye_height - midpoint[1])
    square = cv2.warpAffine(gray, turn, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    resized = cv2.resize(square, (size, size), interpolation=interpolation)
    return (resized.astype(np.float32) / 255.0)[:, :, np.newaxis]
