"""Small and distant faces: found anywhere in frames of every size, followed on a stream region by region, and
cropped by the same function as the training faces."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from fusion_service.features.faces.boxes import Box
from fusion_service.features.faces.crop import face_crop
from fusion_service.features.faces.gray import to_gray
from fusion_service.features.faces.pipeline import FacePipeline, make_detector
from fusion_service.features.faces.search import REGION_FACE_WIDTH, REGION_SIDE, StreamFaceSearch
from testkit.media import no_face_photo, small_face_frame


@pytest.fixture(scope="module")
def pipeline() -> FacePipeline:
    return FacePipeline(make_detector())


def found(boxes: list[Box], truth: tuple) -> bool:
    return any(box.overlap(Box(*truth)) >= 0.4 for box in boxes)


class RecordingDetector:
    """The default detector, recording the size of every image it is given."""

    def __init__(self) -> None:
        self.detector = make_detector()
        self.framing = self.detector.framing
        self.sizes: list[tuple[int, int]] = []
        self.confirmed: list[bool] = []
        self.deep: list[bool] = []
        self.everyone: list[bool] = []

    def detect(self, image: np.ndarray, *, confirm: bool = True, deep: bool = True, everyone: bool = False
               ) -> list[Box]:
        self.sizes.append(image.shape[:2])
        self.confirmed.append(confirm)
        self.deep.append(deep)
        self.everyone.append(everyone)
        return self.detector.detect(image, confirm=confirm, deep=deep, everyone=everyone)


@pytest.mark.parametrize(("frame_size", "face_width"), [
    ((320, 240), 32), ((640, 480), 40), ((640, 480), 70), ((640, 480), 180), ((1280, 720), 40), ((1280, 720), 70),
    ((1280, 720), 90), ((1280, 720), 120), ((1920, 1080), 60),
])
@pytest.mark.parametrize("where", ["top left", "centre", "bottom right"])
def test_a_small_face_is_found_anywhere_in_the_frame(pipeline, frame_size, face_width, where):
    """Down to 40 px (3% of 1280) or 3% of larger frames' width (a 70 px face in 640x480: the issue's), and faces
    where two passes meet: 90-120 px in 1280x720 are 24-32 px to the middle pass (under what it finds reliably)
    and 72-96 px to the finest; 180 px in 640x480 is too wide for the finest pass (over 128 px) and 36 px to the
    coarsest."""
    width, height = frame_size
    x, y = {"top left": (10, 10), "centre": ((width - face_width) // 2, (height - face_width) // 2),
            "bottom right": (width - face_width - 10, height - face_width - 10)}[where]
    frame, truth = small_face_frame(face_width, frame_size, (x, y))
    boxes, crops = pipeline.faces(frame)
    assert found(boxes, truth), f"no box on the {face_width} px face at {truth}: {boxes}"
    assert crops.shape[1:] == (48, 48, 1)


@pytest.mark.parametrize("frame_size", [(640, 480), (1280, 720), (1920, 1080)])
def test_a_face_free_frame_has_no_face_at_any_frame_size(pipeline, frame_size):
    boxes, crops = pipeline.faces(cv2.resize(no_face_photo(), frame_size, interpolation=cv2.INTER_AREA))
    assert boxes == [] and crops.shape == (0, 48, 48, 1)


@pytest.mark.parametrize("photo", ["hubble_deep_field", "coins"])
def test_face_like_patterns_are_not_taken_for_faces(pipeline, photo):
    """Galaxies and coins look like small faces to the fine pass: FaceMesh's presence score says they are not."""
    image = getattr(data, photo)()
    bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR if image.ndim == 2 else cv2.COLOR_RGB2BGR)
    assert pipeline.faces(cv2.resize(bgr, (640, 480), interpolation=cv2.INTER_AREA))[0] == []


def frame_of_several_faces(
    frame_size: tuple[int, int], faces: list[tuple[int, tuple[int, int]]]
) -> tuple[np.ndarray, list]:
    """A frame with the astronaut's head at each (face width, top-left corner of the face box), and the boxes."""
    (first_width, first_place), *others = faces
    frame, first = small_face_frame(first_width, frame_size, first_place)
    truths = [first]
    for face_width, place in others:
        head, truth = small_face_frame(face_width, frame_size, place)
        x, y, side, _ = truth
        pad = side // 2  # the head and some of its shoulders
        frame[y - pad : y + 2 * side, x - pad : x + side + pad] = head[y - pad : y + 2 * side, x - pad : x + side + pad]
        truths.append(truth)
    return frame, truths


def test_small_faces_beside_a_near_one_are_found_by_the_every_scale_search_largest_first():
    """A person at the screen and two further away in 640x480: every-scale goes on after the near face (the
    default stops at the first pass with one, which finds the near face and the 80 px one here)."""
    frame, truths = frame_of_several_faces((640, 480), [(150, (420, 150)), (45, (60, 380)), (80, (200, 60))])
    boxes, crops = FacePipeline(make_detector("blazeface-every-scale")).faces(frame)
    assert len(boxes) == 3 and len(crops) == 3
    assert all(found(boxes, truth) for truth in truths)
    assert [box.area for box in boxes] == sorted((box.area for box in boxes), reverse=True)


def test_faces_of_several_sizes_in_a_large_frame_are_all_found_by_the_every_scale_search():
    """In 1280x720 every-scale runs every pass, the finest too, after the near face is found."""
    frame, truths = frame_of_several_faces((1280, 720), [(150, (900, 300)), (70, (100, 500)), (100, (450, 100))])
    boxes, _ = FacePipeline(make_detector("blazeface-every-scale")).faces(frame)
    assert len(boxes) == 3 and all(found(boxes, truth) for truth in truths)


def test_a_stream_finds_a_person_further_away_beside_a_near_one_and_keeps_both():
    """The default whole-frame search (a Fuse call's) ends at the pass that finds the near face; a stream's first
    frame is searched at every scale, and both people are then followed region by region."""
    frame, truths = frame_of_several_faces((640, 480), [(200, (40, 60)), (60, (520, 240))])
    pipeline = FacePipeline(make_detector())
    assert len(pipeline.faces(frame)[0]) == 1
    search = StreamFaceSearch(pipeline)
    for _ in range(4):
        boxes, crops = search.faces(frame)
        assert len(boxes) == len(crops) == 2 and all(found(boxes, truth) for truth in truths)
    assert search.full_searches == search.everyone_searches == 1


def test_a_search_for_everyone_adds_faces_and_keeps_the_boxes_of_those_the_default_search_finds():
    """So that a stream's box of its main face does not jump when its search for everyone comes round."""
    frame, truths = frame_of_several_faces((640, 480), [(200, (40, 60)), (60, (520, 240))])
    detector = make_detector()
    (near,) = detector.detect(frame)
    everyone = detector.detect(frame, everyone=True)
    assert everyone[0] == near and len(everyone) == 2 and found(everyone[1:], truths[1])


def test_a_stream_searches_for_everyone_on_its_first_frame_and_every_everyone_search_every_frames():
    detector = RecordingDetector()
    search = StreamFaceSearch(FacePipeline(detector), full_search_every=2, everyone_search_every=4)
    frame, truth = small_face_frame(80, (640, 480), (300, 200))
    for _ in range(9):
        assert found(search.faces(frame)[0], truth)
    whole = [everyone for size, everyone in zip(detector.sizes, detector.everyone) if size == (480, 640)]
    assert whole == [True, False, True, False, True]  # frames 0, 2, 4, 6 and 8; regions between
    assert search.everyone_searches == 3 and search.full_searches == 5
    assert not any(everyone for size, everyone in zip(detector.sizes, detector.everyone) if size != (480, 640))


def test_a_stream_keeps_a_small_moving_face_searching_only_around_it_between_whole_frame_searches():
    detector = RecordingDetector()
    search = StreamFaceSearch(FacePipeline(detector), full_search_every=5)
    misses = []
    for frame_index in range(20):
        frame, truth = small_face_frame(70, (1280, 720), (200 + 12 * frame_index, 300 + 3 * frame_index))
        boxes, _ = search.faces(frame)
        if not found(boxes, truth):
            misses.append(frame_index)
    assert misses == []
    assert search.full_searches == 4  # frames 0, 5, 10, 15: the rest searched around the face only
    regions = [size for size in detector.sizes if size != (720, 1280)]
    assert len(regions) == 16
    # A region's cost does not grow with the frame: the face is scaled to REGION_FACE_WIDTH px in it.
    assert max(max(size) for size in regions) <= REGION_SIDE * REGION_FACE_WIDTH + 2


def test_a_followed_face_found_where_it_was_is_not_confirmed_again_and_a_moved_one_is():
    """FaceMesh's second look costs twice BlazeFace's pass: a face that overlaps its last box needs none."""
    detector = RecordingDetector()
    search = StreamFaceSearch(FacePipeline(detector), full_search_every=100)
    search.faces(small_face_frame(80, (640, 480), (300, 200))[0])
    frame, truth = small_face_frame(80, (640, 480), (304, 202))  # a small move: the same face
    assert found(search.faces(frame)[0], truth)
    assert detector.confirmed == [True, False]  # the whole-frame search confirms; the region look does not
    detector.confirmed.clear()
    frame, truth = small_face_frame(80, (640, 480), (304 + 70, 202))  # most of a face width: looked at again
    assert found(search.faces(frame)[0], truth)
    assert detector.confirmed == [False, True]


def test_a_face_lost_from_its_region_is_searched_for_in_the_whole_frame_at_once():
    search = StreamFaceSearch(FacePipeline(make_detector()), full_search_every=100)
    search.faces(small_face_frame(80, (1280, 720), (100, 100))[0])
    frame, truth = small_face_frame(80, (1280, 720), (1000, 500))  # jumped across the frame
    boxes, _ = search.faces(frame)
    assert found(boxes, truth) and search.full_searches == 2


def test_a_frame_without_the_face_gives_no_face_and_the_face_is_found_when_it_is_back():
    """Back within `full_search_every` frames: the next search down to the smallest faces finds it."""
    search = StreamFaceSearch(FacePipeline(make_detector()), full_search_every=3)
    frame, truth = small_face_frame(70, (640, 480), (300, 200))
    assert found(search.faces(frame)[0], truth)
    assert search.faces(no_face_photo())[0] == []
    assert any(found(search.faces(frame)[0], truth) for _ in range(3))


def test_with_nobody_in_view_the_deep_search_runs_only_every_full_search_every_frames():
    """An empty room costs a quick look a frame; someone near the camera is found at once, someone far off
    within full_search_every frames."""
    detector = RecordingDetector()
    search = StreamFaceSearch(FacePipeline(detector), full_search_every=5)
    empty = cv2.resize(no_face_photo(), (1280, 720), interpolation=cv2.INTER_AREA)
    for _ in range(6):
        assert search.faces(empty)[0] == []
    assert detector.deep == [True, False, False, False, False, True]  # the stream's first frame is searched deeply
    near, truth = small_face_frame(400, (1280, 720), (400, 150))
    assert found(search.faces(near)[0], truth) and detector.deep[-1] is False  # found by the quick look


def test_the_crop_of_a_small_face_on_a_stream_is_made_by_the_training_crop_function():
    """Training crops every face through FacePipeline -> face_crop with the detector's framing; so does a stream."""
    pipeline = FacePipeline(make_detector())
    search = StreamFaceSearch(pipeline, full_search_every=5)
    for frame_index in range(3):  # the first frame is searched whole, the next ones region by region
        frame, _ = small_face_frame(40, (640, 480), (300 + 5 * frame_index, 200))
        boxes, crops = search.faces(frame)
        (box,) = boxes
        framing = pipeline.detector.framing
        expected = face_crop(to_gray(frame), box, margin=framing.margin, shift=framing.shift, roll=framing.roll_for(box))
        np.testing.assert_array_equal(crops[0], expected)
        np.testing.assert_array_equal(crops, pipeline.crops(to_gray(frame), boxes)[1])


def test_full_search_every_must_be_a_positive_number_of_frames():
    with pytest.raises(ValueError, match="full_search_every"):
        StreamFaceSearch(FacePipeline(make_detector()), full_search_every=0)
    with pytest.raises(ValueError, match="everyone_search_every"):
        StreamFaceSearch(FacePipeline(make_detector()), everyone_search_every=0)
