"""BlazeFace: anchors, decoding back to the image's pixels, suppression, and a clear error without its file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from fusion_service.features.faces import models
from fusion_service.features.faces.blazeface import BlazeFaceDetector, anchor_centres, weighted_nms
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.haar import HaarFaceDetector
from testkit.media import face_photo


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector()


def test_anchors_are_the_896_centres_of_the_short_range_model():
    anchors = anchor_centres()
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 16, 0.5 / 16])  # stride 8: a 16x16 grid, two per cell
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[512], [0.5 / 8, 0.5 / 8])  # stride 16: an 8x8 grid, six per cell
    np.testing.assert_allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


def test_finds_the_face_haar_finds(detector):
    gray = to_gray(face_photo())
    (haar,) = HaarFaceDetector().detect(gray)
    (found,) = detector.detect(gray)
    assert found.overlap(haar) > 0.5


@pytest.mark.parametrize("pad", [(0, 96), (96, 0)], ids=["wide", "tall"])
def test_boxes_come_back_in_the_pixels_of_a_letterboxed_image(detector, pad):
    """The network sees a padded square; the box must land on the face in the image that was passed in."""
    gray = to_gray(face_photo())
    (reference,) = detector.detect(gray)
    rows, cols = pad
    canvas = cv2.copyMakeBorder(gray, rows, rows, cols, cols, cv2.BORDER_CONSTANT, value=0)
    (found,) = detector.detect(canvas)
    moved = found.__class__(found.x - cols, found.y - rows, found.width, found.height)
    assert moved.overlap(reference) > 0.7


def test_faces_smaller_than_the_minimum_fraction_are_dropped():
    gray = to_gray(face_photo())
    (found,) = BlazeFaceDetector().detect(gray)
    fraction = min(found.width, found.height) / min(gray.shape)
    assert BlazeFaceDetector(min_face_fraction=fraction * 1.2).detect(gray) == []


def test_weighted_nms_merges_overlapping_boxes_by_score_and_keeps_separate_ones():
    corners = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [5.0, 5.0, 6.0, 6.0]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)

    merged = weighted_nms(corners, scores, iou_threshold=0.3)

    np.testing.assert_allclose(merged[0], [0.04, 0.0, 1.04, 1.0], atol=1e-6)  # (0.9 * 0 + 0.6 * 0.1) / 1.5
    np.testing.assert_allclose(merged[1], corners[2])
    assert len(merged) == 2


def test_without_its_network_file_the_error_says_how_to_reinstall_or_what_to_use_instead(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "__file__", str(tmp_path / "__init__.py"))  # an installation without package data
    with pytest.raises(RuntimeError, match=r"face_detection_short_range.tflite is missing.*--face-detector haar"):
        BlazeFaceDetector()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_score": 1.0}, "min_score"), ({"nms_iou": 0.0}, "nms_iou"), ({"min_face_fraction": 1.0}, "min_face_fraction"),
])
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BlazeFaceDetector(**kwargs)


@pytest.mark.parametrize("turn", [-20.0, 20.0])
def test_the_roll_follows_a_turned_face(detector, turn):
    gray = to_gray(face_photo())
    (upright,) = detector.detect(gray)
    rotation = cv2.getRotationMatrix2D((gray.shape[1] / 2, gray.shape[0] / 2), turn, 1.0)  # + is anticlockwise
    (turned,) = detector.detect(cv2.warpAffine(gray, rotation, gray.shape[::-1], borderMode=cv2.BORDER_REPLICATE))
    # The short-range model's eye points lag behind large turns (a 20-degree turn reads as 10-25 degrees):
    # the roll must move the right way by a good part of the turn.
    moved = upright.roll - turned.roll  # anticlockwise turns make the roll (clockwise) smaller
    assert np.sign(moved) == np.sign(turn) and 0.4 * abs(turn) <= abs(moved) <= 1.5 * abs(turn)
