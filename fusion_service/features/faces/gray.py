"""The gray uint8 image every detector and crop works on."""

from __future__ import annotations

import cv2
import numpy as np


def require_gray(gray: np.ndarray) -> None:
    """Refuses anything but a non-empty 2-D uint8 image, naming what it got."""
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
