"""A stream frame that repeats the last one searched whole keeps its faces, and its video outcome for a while:
the real Analyzer and face search, a counting fake video model, StreamSession without gRPC."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fusion_service import repeated_frames
from fusion_service.analysis import Analyzer, Faces, Options, Outcome, video_contract
from fusion_service.features.faces.boxes import Box
from fusion_service.model_client import ModelError, Prediction
from fusion_service.repeated_frames import SeenFrame
from fusion_service.stream import StreamSession
from protos.emotion.v1 import emotion_pb2 as pb
from testkit.media import face_photo, jpeg

FACE = jpeg(face_photo())
FACE_AGAIN_OTHER_BYTES = jpeg(face_photo(), quality=80)  # the same scene, encoded differently: another image


class CountingVideoModel:
    """Scores a face by its crop's mean brightness, so equal crops get equal scores; counts calls; fails when told."""

    contract = video_contract("video")

    def __init__(self):
        self.calls = 0
        self.failing = False

    async def predict(self, crops: np.ndarray, deadline: float | None = None) -> Prediction:
        self.calls += 1
        if self.failing:
            raise ModelError("video model down")
        scores = np.full((len(crops), 7), 0.1, dtype=np.float32)
        scores[:, 0] += crops.reshape(len(crops), -1).mean(axis=1)
        return Prediction(probabilities=scores / scores.sum(axis=1, keepdims=True), version=2)


class CountingAnalyzer(Analyzer):
    def __init__(self, model: CountingVideoModel, executor):
        super().__init__(model, model, executor, max_audio_seconds=10.0)
        self.searches = 0

    async def find_faces(self, image, search=None, **decoding):
        self.searches += 1
        return await super().find_faces(image, search, **decoding)


@pytest.fixture
def model():
    return CountingVideoModel()


@pytest.fixture
def analyzer(model):
    with ThreadPoolExecutor(1) as executor:
        yield CountingAnalyzer(model, executor)


def frame(sequence: int, image: bytes) -> pb.StreamRequest:
    return pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=image), sequence=sequence))


async def answer_each(analyzer: Analyzer, images: list[bytes]) -> list[pb.StreamResponse]:
    """One frame at a time, each sent once the last one's result came: one result per frame."""
    session = StreamSession(analyzer, Options(audio_weight=0.3, video_weight=0.7), 50.0, max_pixels=1_000_000)
    queue: asyncio.Queue[pb.StreamRequest | None] = asyncio.Queue()

    async def requests():
        while (request := await queue.get()) is not None:
            yield request

    results = session.results(requests())
    responses = []
    for sequence, image in enumerate(images, 1):
        await queue.put(frame(sequence, image))
        responses.append(await anext(results))
    await queue.put(None)
    responses.extend([response async for response in results])
    return responses


def video_answer(response: pb.StreamResponse) -> tuple:
    result = response.result
    return (result.video.status, tuple(s.probability for s in result.video.scores),
            tuple((f.box.x, f.box.y, f.box.width, f.box.height) for f in result.faces))


def test_a_repeated_frame_is_not_searched_again_and_keeps_the_answer_of_its_whole_frame_search(
    analyzer, model, monkeypatch
):
    monkeypatch.setattr(repeated_frames, "OUTCOME_KEPT_S", 3600.0)
    responses = asyncio.run(answer_each(analyzer, [FACE] * 4))

    assert analyzer.searches == 1 and model.calls == 1
    assert [r.frame_sequence for r in responses] == [1, 2, 3, 4]
    assert {video_answer(r) for r in responses} == {video_answer(responses[0])}
    assert responses[0].result.video.status == pb.USED and len(responses[0].result.faces) == 1
    # What a Fuse call of the image (a whole-frame search) answers.
    fused = asyncio.run(analyzer.fuse(
        None, 0, pb.Image(encoded=FACE), Options(audio_weight=0.3, video_weight=0.7), max_pixels=1_000_000
    ))
    assert video_answer(responses[-1])[1:] == (tuple(s.probability for s in fused.video.scores),
                                               tuple((f.box.x, f.box.y, f.box.width, f.box.height) for f in fused.faces))


def test_past_its_time_the_video_model_is_asked_again_for_the_same_faces_and_an_outage_shows(
    analyzer, model, monkeypatch
):
    monkeypatch.setattr(repeated_frames, "OUTCOME_KEPT_S", 0.0)
    responses = asyncio.run(answer_each(analyzer, [FACE] * 3))
    assert analyzer.searches == 1 and model.calls == 3
    assert {video_answer(r) for r in responses} == {video_answer(responses[0])}

    model.failing, model.calls, analyzer.searches = True, 0, 0
    responses = asyncio.run(answer_each(analyzer, [FACE] * 3))
    # The first frame of this stream is searched; its repeats are not, but the model is asked each time.
    assert analyzer.searches == 1 and model.calls == 3
    assert all(r.result.video.status == pb.MODEL_UNAVAILABLE for r in responses)


def test_a_repeat_of_a_frame_searched_only_around_the_last_faces_is_searched_again(analyzer, model, monkeypatch):
    monkeypatch.setattr(repeated_frames, "OUTCOME_KEPT_S", 3600.0)
    # The first frame is searched whole; the second (other bytes) around the first one's face: someone new in
    # it would be found only by a later whole-frame search, so its repeat is searched again.
    asyncio.run(answer_each(analyzer, [FACE, FACE_AGAIN_OTHER_BYTES, FACE_AGAIN_OTHER_BYTES]))
    assert analyzer.searches == 3 and model.calls == 3


def test_a_kept_outcome_holds_without_a_face_always_when_used_for_a_while_and_never_after_a_failure(monkeypatch):
    monkeypatch.setattr(repeated_frames, "OUTCOME_KEPT_S", 1.0)
    image = pb.Image(encoded=FACE)
    faces = Faces([Box(0, 0, 10, 10)], np.zeros((1, 48, 48, 1), dtype=np.float32), whole_frame=True)

    def seen(status: int) -> SeenFrame:
        return SeenFrame(image, faces, Outcome(status), outcome_at=100.0)

    assert seen(pb.NO_FACE).outcome_holds(now=10_000.0)
    assert seen(pb.USED).outcome_holds(now=100.9) and not seen(pb.USED).outcome_holds(now=101.0)
    assert not seen(pb.MODEL_UNAVAILABLE).outcome_holds(now=100.0)
    assert seen(pb.USED).shows(pb.Image(encoded=bytes(bytearray(FACE))))
    assert not seen(pb.USED).shows(pb.Image(encoded=FACE_AGAIN_OTHER_BYTES))
