"""BlazeFace: anchors, decoding back to the image's pixels, suppression, the passes of its search, and a clear error
without its file."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from fusion_service.features.faces import models
from fusion_service.features.faces.blazeface import (
    FULL_RANGE,
    MAX_PIXELS_AFTER_FACE,
    BlazeFaceDetector,
    anchor_centres,
    weighted_nms,
)
from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.haar import HaarFaceDetector
from testkit.media import face_photo, small_face_frame


@pytest.fixture(scope="module")
def detector() -> BlazeFaceDetector:
    return BlazeFaceDetector()


def test_anchors_are_the_896_centres_of_the_short_range_model_on_its_own_input():
    anchors = anchor_centres(128, 128)
    assert anchors.shape == (896, 2)
    np.testing.assert_allclose(anchors[0], [4, 4])  # stride 8: a 16x16 grid, two per cell, in input pixels
    np.testing.assert_allclose(anchors[1], anchors[0])
    np.testing.assert_allclose(anchors[512], [8, 8])  # stride 16: an 8x8 grid, six per cell
    np.testing.assert_allclose(anchors[-1], [120, 120])


def test_anchors_cover_a_larger_input_in_the_networks_output_order():
    anchors = anchor_centres(96, 160)
    assert anchors.shape == (12 * 20 * 2 + 6 * 10 * 6, 2)
    np.testing.assert_allclose(anchors[2], [12, 4])  # row-major: the second cell of the first row
    np.testing.assert_allclose(anchors[-1], [152, 88])


def test_the_full_range_model_has_one_anchor_per_cell_of_a_48x48_grid():
    assert anchor_centres(192, 192, FULL_RANGE.anchor_layers).shape == (2304, 2)


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


def test_faces_under_half_the_smallest_face_searched_for_are_dropped():
    gray = to_gray(face_photo())
    (found,) = BlazeFaceDetector().detect(gray)
    fraction = min(found.width, found.height) / gray.shape[1]
    assert BlazeFaceDetector(smallest_face_fraction=2 * fraction * 1.1).detect(gray) == []


def test_colour_and_gray_frames_give_the_same_face(detector):
    photo = face_photo()
    (in_colour,) = detector.detect(photo)
    (in_gray,) = detector.detect(to_gray(photo))
    assert in_colour.overlap(in_gray) > 0.8


def test_the_full_range_model_finds_the_face_too():
    (found,) = BlazeFaceDetector(model=FULL_RANGE).detect(face_photo())
    (short,) = BlazeFaceDetector().detect(face_photo())
    assert found.overlap(short) > 0.6


def test_weighted_nms_merges_overlapping_boxes_by_score_and_keeps_separate_ones():
    corners = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [5.0, 5.0, 6.0, 6.0]], np.float32)
    scores = np.array([0.9, 0.6, 0.7], np.float32)

    merged, support = weighted_nms(corners, scores, iou_threshold=0.3)

    np.testing.assert_allclose(merged[0], [0.04, 0.0, 1.04, 1.0], atol=1e-6)  # (0.9 * 0 + 0.6 * 0.1) / 1.5
    np.testing.assert_allclose(merged[1], corners[2])
    assert len(merged) == 2
    np.testing.assert_array_equal(support, [2, 1])  # how many boxes each kept box was merged from


def test_without_its_network_file_the_error_says_how_to_reinstall_or_what_to_use_instead(monkeypatch, tmp_path):
    monkeypatch.setattr(models, "__file__", str(tmp_path / "__init__.py"))  # an installation without package data
    with pytest.raises(RuntimeError, match=r"face_detection_short_range.tflite is missing.*--face-detector haar"):
        BlazeFaceDetector()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"min_score": 1.0}, "min_score"), ({"nms_iou": 0.0}, "nms_iou"), ({"smallest_face": 0}, "smallest_face"),
    ({"smallest_face_fraction": 1.0}, "smallest_face_fraction"), ({"reliable_face": 200}, "reliable_face"),
    ({"scale_step": 1.0}, "scale_step"), ({"min_presence": 1.0}, "min_presence"),
    ({"max_pixels_after_face": -1}, "max_pixels_after_face"),
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


class CountingFinerPasses(BlazeFaceDetector):
    """The default detector, counting the passes finer than the first (the costly ones)."""

    def __init__(self, **settings) -> None:
        super().__init__(**settings)
        self.finer_passes = 0

    def _scaled(self, rgb, scale):
        self.finer_passes += 1
        return super()._scaled(rgb, scale)


def test_after_a_near_face_the_finer_passes_run_within_the_budget():
    """Someone at the screen is found by the first pass; with a budget of a 640x480 input the finer passes still
    look for people further away, in a 1280x720 frame all but the finest (a 1024x576 input, over the budget)."""
    for (width, height), skipped in (((640, 480), 0), ((1280, 720), 1)):
        near = cv2.resize(face_photo(), (width, width))[:height]
        budget, every, first = (CountingFinerPasses(max_pixels_after_face=limit) for limit in (640 * 480, None, 0))
        finer = len(budget.scales(height, width)) - 1
        assert budget.detect(near) and budget.finer_passes == finer - skipped
        assert every.detect(near) and every.finer_passes == finer
        assert first.detect(near) and first.finer_passes == 0


def test_the_default_search_ends_at_the_first_pass_with_a_confirmed_face():
    near = cv2.resize(face_photo(), (640, 640))[:480]
    default = CountingFinerPasses()
    assert MAX_PIXELS_AFTER_FACE == 0
    assert default.detect(near) and default.finer_passes == 0


def test_without_a_face_every_pass_runs_whatever_the_budget():
    detector = CountingFinerPasses(max_pixels_after_face=0)
    assert detector.detect(np.full((720, 1280, 3), 90, np.uint8)) == []
    assert detector.finer_passes == len(detector.scales(720, 1280)) - 1


def test_a_false_face_of_the_first_pass_does_not_stop_the_search_for_a_small_real_one():
    """The cat's face is found by the first pass and rejected by FaceMesh: the finer passes must still run."""
    frame = cv2.resize(cv2.cvtColor(data.chelsea(), cv2.COLOR_RGB2BGR), (640, 480), interpolation=cv2.INTER_AREA)
    assert BlazeFaceDetector(confirm=False, multi_scale=False).detect(frame) != []  # the cat, to the first pass
    head, (x, y, side, _) = small_face_frame(50, (640, 480), (40, 380))
    frame[y - side // 2 : 480, : x + side + side // 2] = head[y - side // 2 : 480, : x + side + side // 2]
    (found,) = BlazeFaceDetector().detect(frame)
    assert found.overlap(Box(x, y, side, side)) > 0.5


@pytest.mark.parametrize(("frame", "passes"), [((480, 640), 2), ((720, 1280), 3), ((1080, 1920), 3), ((120, 120), 1)])
def test_the_passes_go_from_the_whole_frame_to_the_smallest_face_searched(frame, passes):
    detector = BlazeFaceDetector()
    height, width = frame
    scales = detector.scales(height, width)
    assert len(scales) == passes
    assert scales[0] == pytest.approx(detector.model.input_size / max(height, width))  # the whole frame, letterboxed
    assert scales == sorted(scales)
    if passes > 1:  # the finest: the smallest face searched for is reliable_face px to the network
        assert scales[-1] * detector.smallest_searched(width) == pytest.approx(detector.reliable_face)
    assert all(finer / coarser <= detector.scale_step * 1.001 for coarser, finer in zip(scales[1:], scales[2:]))


def test_the_smallest_face_searched_is_in_pixels_up_to_a_share_of_large_frames():
    """40 px faces at 1280x720 are searched for (3% of the width); at 1920x1080 the share keeps the cost bounded."""
    detector = BlazeFaceDetector()
    assert detector.smallest_searched(640) == detector.smallest_searched(1280) == detector.smallest_face
    assert detector.smallest_searched(1920) == pytest.approx(detector.smallest_face_fraction * 1920)
