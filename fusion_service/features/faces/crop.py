"""Crop geometry: every face the video model sees goes through `face_crop`, so a webcam face and a training
face (FER2013 / CK+48) are framed, sized and scaled the same way."""

from __future__ import annotations

import cv2
import numpy as np

from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.gray import require_gray

FACE_SIZE = 48


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
