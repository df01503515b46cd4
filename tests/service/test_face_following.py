"""Which face the answer is about: the largest in a single image, the same person from frame to frame on a stream."""

from __future__ import annotations

import asyncio
import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fusion_service.analysis import Analyzer, Options, Outcome, video_contract
from fusion_service.face_tracking import MIN_OVERLAP, main_face
from fusion_service.features.faces.boxes import Box
from fusion_service.model_client import Prediction
from fusion_service.stream import StreamSession
from protos.emotion.v1 import emotion_pb2 as pb
from testkit.media import two_faces_photo
from tests.service.test_stream import FindsOneFace, collect, frame

LARGE = Box(0, 0, 100, 100)
SMALL = Box(300, 20, 80, 80)


def test_overlap_is_intersection_over_union():
    assert LARGE.overlap(LARGE) == 1.0
    assert LARGE.overlap(SMALL) == 0.0
    assert Box(0, 0, 10, 10).overlap(Box(5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_without_history_the_largest_face_is_the_main_one():
    assert main_face([LARGE, SMALL]) == 0


def test_the_face_followed_stays_the_main_one_though_another_is_larger():
    moved_a_little = dataclasses.replace(SMALL, x=SMALL.x + 10, y=SMALL.y - 5)

    assert main_face([LARGE, SMALL], followed=moved_a_little) == 1


def test_when_the_followed_face_is_gone_the_largest_takes_over():
    elsewhere = Box(600, 400, 80, 80)
    barely_touching = Box(SMALL.x + 60, SMALL.y, 80, 80)
    assert SMALL.overlap(barely_touching) < MIN_OVERLAP

    assert main_face([LARGE, SMALL], followed=elsewhere) == 0
    assert main_face([LARGE, SMALL], followed=barely_touching) == 0


def test_main_face_refuses_an_empty_list():
    with pytest.raises(ValueError, match="at least one box"):
        main_face([])


class RowPerFace:
    """A video model that gives face i all its probability on emotion i, so a score tells which face it is."""

    contract = video_contract("video")

    async def predict(self, crops: np.ndarray, deadline: float | None = None) -> Prediction:
        return Prediction(probabilities=np.eye(7, dtype=np.float32)[: len(crops)], version=3)


@pytest.fixture(scope="module")
def analyzer():
    with ThreadPoolExecutor(1) as executor:
        yield Analyzer(RowPerFace(), RowPerFace(), executor, max_audio_seconds=10.0)


def box_of(face: pb.Face) -> Box:
    return Box(face.box.x, face.box.y, face.box.width, face.box.height)


def test_the_video_answer_is_the_largest_face_unless_another_face_is_followed(analyzer):
    image, right_begins = two_faces_photo()

    largest = asyncio.run(analyzer.video(image))
    smaller = box_of(largest.faces[1])
    followed = asyncio.run(analyzer.video(image, follow=smaller))

    assert len(largest.faces) == 2 and largest.primary_face == 0
    assert box_of(largest.faces[0]).x < right_begins <= smaller.x + smaller.width / 2
    np.testing.assert_array_equal(largest.probabilities, np.eye(7)[0])
    assert followed.primary_face == 1 and box_of(followed.faces[1]) == smaller
    np.testing.assert_array_equal(followed.probabilities, np.eye(7)[1])
    assert [f.top_emotion for f in followed.faces] == [f.top_emotion for f in largest.faces]  # every face scored


class FollowingAnalyzer(FindsOneFace):
    """Finds two faces in every frame, or none where told; records which face each call was asked to follow."""

    def __init__(self, frames_without_face: set[int]):
        self.followed: list[Box | None] = []
        self.frames_without_face = frames_without_face

    async def classify(self, faces, deadline=None, follow=None):
        self.followed.append(follow)
        if len(self.followed) in self.frames_without_face:
            return Outcome(pb.NO_FACE, "no face found in the image")
        primary = main_face([LARGE, SMALL], follow or SMALL)  # the first frame picks the smaller face
        return Outcome(pb.USED, probabilities=np.eye(7, dtype=np.float32)[primary], primary_face=primary,
                       primary_box=[LARGE, SMALL][primary])

    def response(self, audio, video, options):
        return pb.FuseResponse(primary_face=video.primary_face)


def test_a_stream_follows_its_main_face_from_frame_to_frame_and_through_a_frame_without_one():
    analyzer = FollowingAnalyzer(frames_without_face={2})
    stream = StreamSession(analyzer, Options(audio_weight=0.3, video_weight=0.7), 50.0, max_pixels=1_000_000)

    asyncio.run(collect(stream, [frame(i) for i in range(1, 5)], pause_s=0.05))

    assert len(analyzer.followed) == 4, "one analysis per frame"
    assert analyzer.followed == [None, SMALL, SMALL, SMALL]
