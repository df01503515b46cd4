"""A close look around a face: the square a few face widths wide around it, scaled so that the face has a chosen
width, searched by a detector, with the boxes brought back to the frame: how a stream looks for its faces
(search.py)."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box


def search_region(
    detect: Callable[[np.ndarray], list[Box]], image: np.ndarray, face: Box, *, side: float, face_width: int
) -> list[Box]:
    """Boxes `detect` finds in the square `side` face widths wide around `face` (cut at the image's edges), scaled
    so that the face is `face_width` px wide; in the image's pixels."""
    face_side = max(face.width, face.height)
    half = side * face_side / 2
    centre_x, centre_y = face.x + face.width / 2, face.y + face.height / 2
    height, width = image.shape[:2]
    x0, y0 = max(0, round(centre_x - half)), max(0, round(centre_y - half))
    x1, y1 = min(width, round(centre_x + half)), min(height, round(centre_y + half))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return []
    scale = face_width / face_side
    size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
    scaled = cv2.resize(image[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return [
        Box(round(x0 + b.x / scale), round(y0 + b.y / scale), round(b.width / scale), round(b.height / scale), b.roll)
        for b in detect(scaled)
    ]
