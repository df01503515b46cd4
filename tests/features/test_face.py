"""The shared face pipeline on scikit-image's bundled photographs (no dataset needed)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from fusion_service.features.faces.boxes import Box, Framing, intersection_over_union
from fusion_service.features.faces.crop import FACE_SIZE, face_crop
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.haar import HaarFaceDetector
from fusion_service.features.faces.names import DETECTOR_NAMES
from fusion_service.features.faces.pipeline import DETECTORS, FacePipeline, make_detector
from testkit.media import two_faces_photo


@pytest.fixture(scope="module", params=DETECTOR_NAMES)
def pipeline(request) -> FacePipeline:
    """Every behaviour below holds for each detector the service can be configured with."""
    return FacePipeline(make_detector(request.param))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """512x512 BGR portrait with one frontal face around x 175-280, y 60-170 (checked by eye)."""
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


class DetectorThatMustNotRun:
    def detect(self, gray: np.ndarray) -> list[Box]:
        raise AssertionError("face_image must not run the detector")


def centre(box: Box) -> tuple[float, float]:
    return box.x + box.width / 2, box.y + box.height / 2


def test_box_area_is_width_times_height():
    assert Box(3, 4, 10, 7).area == 70


def test_astronaut_has_one_face_where_her_face_is(pipeline, astronaut):
    boxes, crops = pipeline.faces(astronaut)

    assert len(boxes) == 1
    centre_x, centre_y = centre(boxes[0])
    assert 195 <= centre_x <= 260 and 85 <= centre_y <= 150
    assert 70 <= boxes[0].width <= 150 and 70 <= boxes[0].height <= 150
    assert crops.shape == (1, FACE_SIZE, FACE_SIZE, 1) and crops.dtype == np.float32
    assert 0.0 <= crops.min() and crops.max() <= 1.0
    assert crops.std() > 0.05  # a face, not a flat patch


def test_astronaut_crop_is_deterministic(pipeline, astronaut):
    first_boxes, first_crops = pipeline.faces(astronaut)
    second_boxes, second_crops = FacePipeline(pipeline.detector).faces(astronaut.copy())

    assert first_boxes == second_boxes
    np.testing.assert_array_equal(first_crops, second_crops)


def test_boxes_are_in_full_resolution_coordinates(pipeline, astronaut):
    """Detection runs on a downscaled copy; the boxes must still fit the frame that was passed in."""
    (box,) = pipeline.faces(astronaut)[0]
    (doubled,) = pipeline.faces(cv2.resize(astronaut, (1024, 1024), interpolation=cv2.INTER_LINEAR))[0]

    assert abs(centre(doubled)[0] - 2 * centre(box)[0]) <= 12
    assert abs(centre(doubled)[1] - 2 * centre(box)[1]) <= 12
    assert abs(doubled.width - 2 * box.width) <= 0.2 * doubled.width


def test_rocket_photo_has_no_face(pipeline):
    rocket = cv2.cvtColor(data.rocket(), cv2.COLOR_RGB2BGR)

    boxes, crops = pipeline.faces(rocket)

    assert boxes == []
    assert crops.shape == (0, FACE_SIZE, FACE_SIZE, 1) and crops.dtype == np.float32


def test_two_faces_of_different_sizes_come_largest_first(pipeline):
    frame, right_begins = two_faces_photo()

    boxes, crops = pipeline.faces(frame)

    assert len(boxes) == 2 and crops.shape == (2, FACE_SIZE, FACE_SIZE, 1)
    assert boxes[0].area > boxes[1].area
    assert centre(boxes[0])[0] < right_begins <= centre(boxes[1])[0]


def test_face_image_only_rescales_a_48px_crop():
    crop = np.random.default_rng(0).integers(0, 256, (FACE_SIZE, FACE_SIZE), dtype=np.uint8)

    result = FacePipeline(DetectorThatMustNotRun()).face_image(crop)

    assert result.shape == (FACE_SIZE, FACE_SIZE, 1) and result.dtype == np.float32
    np.testing.assert_allclose(result[:, :, 0], crop / 255.0, atol=1e-6)


def test_face_image_resizes_larger_crops_whole(astronaut):
    face = astronaut[60:170, 170:280]  # 110x110 face crop, as a BGR image

    result = FacePipeline(DetectorThatMustNotRun()).face_image(face)

    expected = cv2.resize(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(result[:, :, 0], expected / 255.0, atol=1e-6)


def test_gray_bgr_and_bgra_give_the_same_face_image(astronaut):
    face = np.ascontiguousarray(astronaut[60:170, 170:280])
    gray = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    pipeline = FacePipeline(DetectorThatMustNotRun())

    from_gray = pipeline.face_image(gray)

    np.testing.assert_array_equal(pipeline.face_image(gray[:, :, np.newaxis]), from_gray)
    np.testing.assert_array_equal(pipeline.face_image(face), from_gray)
    np.testing.assert_array_equal(pipeline.face_image(cv2.cvtColor(face, cv2.COLOR_BGR2BGRA)), from_gray)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(np.zeros((48, 48), np.float32), id="float32"),
        pytest.param(np.zeros((48, 48), np.uint16), id="uint16"),
        pytest.param(np.zeros((48, 48, 2), np.uint8), id="two-channels"),
        pytest.param(np.zeros((48, 48, 5), np.uint8), id="five-channels"),
        pytest.param(np.zeros(48, np.uint8), id="one-dimensional"),
        pytest.param(np.zeros((2, 48, 48, 3), np.uint8), id="batch"),
        pytest.param(np.zeros((0, 48), np.uint8), id="empty"),
        pytest.param([[0, 1], [2, 3]], id="list"),
    ],
)
def test_invalid_images_raise_value_error(image):
    with pytest.raises(ValueError, match="expected"):
        to_gray(image)
    with pytest.raises(ValueError, match="expected"):
        FacePipeline(DetectorThatMustNotRun()).face_image(image)


def test_face_crop_widens_the_box_by_the_margin():
    gray = np.random.default_rng(1).integers(0, 256, (96, 96), dtype=np.uint8)

    crop = face_crop(gray, Box(36, 36, 24, 24), margin=0.5, size=48)

    np.testing.assert_allclose(crop[:, :, 0], gray[24:72, 24:72] / 255.0, atol=1e-6)


def test_face_crop_makes_a_square_around_the_box_centre():
    gray = np.random.default_rng(2).integers(0, 256, (96, 96), dtype=np.uint8)

    crop = face_crop(gray, Box(40, 30, 16, 36), margin=0.0, size=36)

    np.testing.assert_allclose(crop[:, :, 0], gray[30:66, 30:66] / 255.0, atol=1e-6)


def test_face_crop_at_the_border_replicates_edge_pixels():
    gray = np.random.default_rng(3).integers(0, 256, (100, 100), dtype=np.uint8)

    crop = face_crop(gray, Box(-10, -20, 48, 48), margin=0.0, size=48)

    expected = np.pad(gray, ((20, 0), (10, 0)), mode="edge")[:48, :48]
    assert crop.shape == (48, 48, 1) and crop.dtype == np.float32
    np.testing.assert_allclose(crop[:, :, 0], expected / 255.0, atol=1e-6)


def test_face_crop_of_a_box_past_the_image_still_has_the_right_shape():
    gray = np.random.default_rng(4).integers(0, 256, (60, 80), dtype=np.uint8)

    crop = face_crop(gray, Box(70, 50, 40, 40))

    assert crop.shape == (FACE_SIZE, FACE_SIZE, 1) and 0.0 <= crop.min() and crop.max() <= 1.0


@pytest.mark.parametrize(
    ("box", "margin"),
    [(Box(0, 0, 0, 10), 0.0), (Box(0, 0, 10, -1), 0.0), (Box(0, 0, 10, 10), -0.5)],
)
def test_face_crop_rejects_empty_boxes_and_margins_that_leave_nothing(box, margin):
    with pytest.raises(ValueError):
        face_crop(np.zeros((20, 20), np.uint8), box, margin=margin)


def test_face_crop_needs_gray_uint8():
    with pytest.raises(ValueError, match="to_gray"):
        face_crop(np.zeros((20, 20, 3), np.uint8), Box(0, 0, 10, 10))


def test_missing_cascade_file_names_the_fix(tmp_path):
    with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
        HaarFaceDetector(cascade_path=tmp_path / "missing.xml")


def test_opencv_without_bundled_cascades_names_the_fix(monkeypatch):
    monkeypatch.delattr(cv2, "data")  # as in OpenCV 5
    with pytest.raises(RuntimeError, match="opencv-python-headless<5"):
        HaarFaceDetector()


def test_face_crop_shift_moves_the_square_down_by_a_fraction_of_the_box():
    gray = np.tile(np.arange(100, dtype=np.uint8)[:, np.newaxis], (1, 100))  # each row's value is its index
    box = Box(40, 40, 20, 20)

    centred = face_crop(gray, box, size=20)
    lowered = face_crop(gray, box, shift=0.25, size=20)

    np.testing.assert_allclose(lowered - centred, 5 / 255.0, atol=1e-6)  # 0.25 of a 20 px box


class FixedDetector:
    """Two known boxes, one rolled a little and one a lot, framed its own way."""

    framing = Framing(margin=0.25, shift=-0.1, upright_beyond_degrees=12.0)

    def detect(self, gray: np.ndarray) -> list[Box]:
        return [Box(30, 40, 60, 60, roll=8.0), Box(200, 100, 50, 50, roll=-20.0)]


def test_the_pipeline_frames_each_detectors_boxes_the_way_measured_for_that_detector(astronaut):
    gray = to_gray(astronaut)

    boxes, crops = FacePipeline(FixedDetector()).faces(astronaut)

    np.testing.assert_array_equal(crops[0], face_crop(gray, boxes[0], margin=0.25, shift=-0.1))  # 8: left as is
    np.testing.assert_array_equal(crops[1], face_crop(gray, boxes[1], margin=0.25, shift=-0.1, roll=-20.0))
    assert not np.array_equal(crops[0], face_crop(gray, boxes[0]))


def test_a_rolled_face_comes_out_of_face_crop_upright(astronaut):
    gray = to_gray(astronaut)
    box = Box(170, 60, 110, 110)
    centre = (box.x + box.width / 2, box.y + box.height / 2)
    upright = face_crop(gray, box)
    rolled = cv2.warpAffine(gray, cv2.getRotationMatrix2D(centre, -25.0, 1.0), gray.shape[::-1],
                            borderMode=cv2.BORDER_REPLICATE)  # turned 25 degrees clockwise on screen

    turned_back = face_crop(rolled, box, roll=25.0)

    assert np.abs(turned_back - upright).mean() < 0.02
    assert np.abs(face_crop(rolled, box) - upright).mean() > 3 * np.abs(turned_back - upright).mean()


def test_an_unknown_detector_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="blazeface, blazeface-every-scale, haar"):
        make_detector("dlib")


def test_every_detector_name_has_a_detector_in_the_registry():
    assert sorted(DETECTORS) == sorted(DETECTOR_NAMES)


def test_intersection_over_union_takes_one_box_against_many_and_box_overlap_agrees():
    one = np.array([0.0, 0.0, 10.0, 10.0])
    many = np.array([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [3.0, 3.0, 3.0, 8.0]])

    np.testing.assert_allclose(intersection_over_union(one, many), [1.0, 50 / 150, 0.0, 0.0])
    assert Box(0, 0, 10, 10).overlap(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)
    assert Box(0, 0, 10, 10).overlap(Box(10, 0, 10, 10)) == 0.0  # touching edges share no area
