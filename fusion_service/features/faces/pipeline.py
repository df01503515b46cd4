"""The face detectors by name, and the one path from an image to the video model's input."""

from __future__ import annotations

import functools
from typing import Callable

import cv2
import numpy as np

from fusion_service.features.faces.blazeface import BlazeFaceDetector
from fusion_service.features.faces.boxes import Box, FaceDetector
from fusion_service.features.faces.crop import FACE_SIZE, face_crop
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.haar import HaarFaceDetector
from fusion_service.features.faces.names import DEFAULT_DETECTOR, DETECTOR_NAMES

# Every name in names.DETECTOR_NAMES, with the class that builds it (a test keeps the two in step).
DETECTORS: dict[str, Callable[[], FaceDetector]] = {
    "blazeface": BlazeFaceDetector,
    "blazeface-every-scale": functools.partial(BlazeFaceDetector, max_pixels_after_face=None),
    "haar": HaarFaceDetector,
}


def make_detector(name: str = DEFAULT_DETECTOR) -> FaceDetector:
    """A face detector by name, with its default settings. BlazeFace is the default: it finds more held-out
    faces than Haar, in less time (training/reports/video/face_detectors.md, docs/performance.md)."""
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}: choose one of {', '.join(DETECTOR_NAMES)}")
    return DETECTORS[name]()


def detector_input(image: np.ndarray, gray: np.ndarray) -> np.ndarray:
    """What a detector is given: the frame in BGR when it has colour (colour helps BlazeFace), else its gray."""
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return gray


class FacePipeline:
    """Image in, normalised face crops out: the one path from pixels to the video model's input."""

    def __init__(self, detector: FaceDetector | None = None) -> None:
        self.detector = detector if detector is not None else make_detector()

    def faces(self, image: np.ndarray) -> tuple[list[Box], np.ndarray]:
        """Boxes (largest first) and their crops float32 [N, 48, 48, 1] for a full frame (gray, BGR or BGRA);
        N may be 0. The detector gets the colour, the crops are gray."""
        gray = to_gray(image)
        return self.crops(gray, self.detector.detect(detector_input(image, gray)))

    def crops(self, gray: np.ndarray, boxes: list[Box]) -> tuple[list[Box], np.ndarray]:
        """The boxes and their crops [N, 48, 48, 1] from the frame's gray image, framed as the detector's boxes need."""
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
