"""Eye alignment: the landmark network's eyes on a real portrait, and aligned_crop's geometry on drawn eyes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fusion_service.features.faces.align import EyeFraming, FaceLandmarker, aligned_crop, eye_geometry
from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.pipeline import FacePipeline
from testkit.media import face_photo

FRAMING = EyeFraming(eye_distance=0.4, eye_height=0.4)


def dots(image: np.ndarray) -> np.ndarray:
    """Centroids [[x, y], [x, y]] of the two bright blobs in a [size, size, 1] crop, the left one first."""
    mask = (image[:, :, 0] > 0.5).astype(np.uint8)
    count, _, _, centroids = cv2.connectedComponentsWithStats(mask)
    assert count == 3, f"expected two dots, found {count - 1}"
    return centroids[1:][np.argsort(centroids[1:, 0])]


def drawn_eyes(left: tuple[float, float], right: tuple[float, float], shape=(300, 400)) -> np.ndarray:
    gray = np.zeros(shape, np.uint8)
    for x, y in (left, right):
        cv2.circle(gray, (round(x), round(y)), 6, 255, -1)
    return gray


@pytest.mark.parametrize("left, right", [((120, 150), (220, 150)), ((150, 100), (250, 180)), ((300, 200), (220, 120))])
def test_aligned_crop_levels_the_eyes_and_puts_them_where_the_framing_says(left, right):
    gray = drawn_eyes(left, right)

    crop = aligned_crop(gray, np.array([left, right], float), FRAMING, size=96)

    assert crop.shape == (96, 96, 1) and crop.dtype == np.float32
    found = dots(crop)
    np.testing.assert_allclose(found[:, 1], FRAMING.eye_height * 96, atol=1.0)  # level, at the eye height
    np.testing.assert_allclose(found[:, 0].mean(), 48, atol=1.0)  # centred
    np.testing.assert_allclose(found[1, 0] - found[0, 0], FRAMING.eye_distance * 96, atol=1.5)


def test_eye_geometry_reads_back_the_framing_of_an_aligned_crop():
    left, right = np.array([[100.0, 140.0], [190.0, 120.0]])
    crop = aligned_crop(drawn_eyes(left, right), np.array([left, right]), FRAMING, size=200)

    distance, height = eye_geometry(dots(crop), 200)

    assert distance == pytest.approx(FRAMING.eye_distance, abs=0.01)
    assert height == pytest.approx(FRAMING.eye_height, abs=0.01)


def test_framing_and_eyes_are_checked():
    with pytest.raises(ValueError, match="fractions"):
        EyeFraming(eye_distance=1.2, eye_height=0.4)
    with pytest.raises(ValueError, match="must differ"):
        aligned_crop(np.zeros((50, 50), np.uint8), np.array([[10.0, 10.0], [10.0, 10.0]]), FRAMING)


@pytest.fixture(scope="module")
def landmarker() -> FaceLandmarker:
    return FaceLandmarker()


def test_landmarker_finds_the_eyes_of_a_live_face_and_of_the_same_face_as_a_training_crop(landmarker):
    photo = face_photo()
    box = FacePipeline().detector.detect(photo)[0]

    live = landmarker.eyes(photo, box)
    # The same face as a training corpus has it: a gray crop of just the face, its own box.
    side = max(box.width, box.height)
    crop = to_gray(photo)[box.y:box.y + side, box.x:box.x + side]
    as_crop = landmarker.eyes(crop, Box(0, 0, side, side)) + (box.x, box.y)

    assert live[0, 0] < live[1, 0]  # the image's left eye first
    assert abs(live[0, 1] - live[1, 1]) < 0.1 * side  # a frontal, nearly upright face
    assert 0.25 * side < live[1, 0] - live[0, 0] < 0.6 * side
    np.testing.assert_allclose(as_crop, live, atol=0.05 * side)  # colour frame and gray crop agree


def test_a_missing_network_file_names_the_path():
    with pytest.raises(RuntimeError, match="network file not found: /nonexistent/face_landmark.tflite"):
        FaceLandmarker("/nonexistent/face_landmark.tflite")
