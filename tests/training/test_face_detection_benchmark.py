"""The detection benchmark's scenes and counting, on registry photographs (no dataset needed)."""

from __future__ import annotations

import numpy as np

from fusion_service.features.faces.blazeface import BLAZEFACE_FRAMING
from fusion_service.features.faces.boxes import Box, Framing
from fusion_service.features.faces.pipeline import make_detector
from training.face_detection_benchmark import (
    Scene,
    Tally,
    backgrounds,
    bucket_of,
    count,
    matched,
    registry_sources,
    scene,
    scenes,
)


def test_a_pasted_face_lies_in_its_box_at_the_width_asked():
    rng = np.random.default_rng(0)
    (astronaut,) = [source for source in registry_sources() if source.corpus == "astronaut"]
    made = scene(backgrounds(), [astronaut], [150], (640, 480), rng)
    (truth,) = made.faces
    assert truth.width == 150 and made.frame.shape == (480, 640, 3)
    (found,) = make_detector().detect(made.frame)
    assert found.overlap(truth) > 0.5


def test_scenes_spread_single_faces_over_the_width_buckets_and_keep_several_faces_apart():
    rng = np.random.default_rng(1)
    singles, several, empty = scenes(backgrounds(), registry_sources(), (640, 480), 14, 3, 2, rng)
    assert sorted(bucket_of(s.faces[0].width) for s in singles) == sorted(list(range(7)) * 2)
    for item in several:
        assert 2 <= len(item.faces) <= 4
        assert all(a.overlap(b) == 0 for i, a in enumerate(item.faces) for b in item.faces[i + 1 :])
    assert [len(item.faces) for item in empty] == [0, 0]


def test_count_tells_found_faces_from_false_ones():
    tally = Tally.new()
    truth = Box(100, 100, 50, 50)
    count(tally, [Box(102, 101, 48, 50), Box(400, 300, 60, 60)], Scene(np.zeros((1, 1, 3), np.uint8), [truth], []),
          Framing())
    count(tally, [Box(0, 0, 30, 30)], Scene(np.zeros((1, 1, 3), np.uint8), [], []), Framing())
    assert tally.found[bucket_of(50)] == 1 and tally.faces.sum() == 1
    assert tally.false_in_face_frames == 1 and tally.false_in_empty_frames == 1 and tally.empty_frames_with_false == 1
    assert tally.recall(40) == 1.0


def test_a_detection_is_matched_to_a_face_framed_as_its_crop_is():
    """The face's box is in the training-like framing: a tight box on the inner face matches once framed as the
    detector frames its crops, and a box beside the face does not, framed or not."""
    truth = Box(100, 100, 100, 100)
    inner = Box(128, 135, 50, 50)  # the middle of the face, as BlazeFace boxes some enlarged crops
    assert inner.overlap(truth) < 0.3 and matched([inner], truth, Framing()) is None
    assert matched([inner], truth, BLAZEFACE_FRAMING) == 0
    beside = Box(190, 100, 100, 100)
    assert matched([beside], truth, BLAZEFACE_FRAMING) is None
