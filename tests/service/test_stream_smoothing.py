"""A stream's answer smoothed over time: smoothed by default, the instant one beside it, restarted when the followed
face changes or after a gap. StreamSession without gRPC, with a scripted analyzer."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from fusion_service.analysis import Options, Outcome, set_answer
from fusion_service.decoding import InvalidInput
from fusion_service.features.faces.boxes import Box
from fusion_service.stream import StreamSession
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS
from protos.emotion.v1.smoothing import RESTART_AFTER_GAP_S
from tests.service.test_stream import FindsOneFace

PNG = cv2.imencode(".png", np.full((32, 32), 128, dtype=np.uint8))[1].tobytes()
HAPPY = np.array([0.02, 0.02, 0.02, 0.8, 0.1, 0.02, 0.02], dtype=np.float32)
SAD = np.array([0.02, 0.02, 0.02, 0.1, 0.02, 0.8, 0.02], dtype=np.float32)
HERE, ELSEWHERE = Box(10, 10, 100, 100), Box(400, 10, 100, 100)
UNCERTAIN_BELOW = 0.55


class ScriptedAnalyzer(FindsOneFace):
    """Each frame's answer, and where its face is, come from a script: one (probabilities, box) per frame."""

    def __init__(self, script: list[tuple[np.ndarray, Box]]):
        self.script = list(script)

    async def audio(self, samples, sample_rate, enabled=True, deadline=None):
        raise AssertionError("these streams carry no audio")

    async def classify(self, faces, deadline=None, follow=None):
        probabilities, box = self.script.pop(0)
        return Outcome(pb.USED, probabilities=probabilities, version=1, primary_box=box)

    def response(self, audio, video, options):
        response = pb.FuseResponse(video=pb.ModalityResult(status=video.status), uncertain_below=UNCERTAIN_BELOW)
        if video.probabilities is not None:
            set_answer(response, video.probabilities, disagree=False)
        return response


def frame(sequence: int) -> pb.StreamRequest:
    return pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=PNG), sequence=sequence))


def run(script, pauses_s, config: pb.StreamConfig | None = None, default_s: float = 1.0) -> list[pb.StreamResponse]:
    """One frame per script entry, each after the pause given for it; results at up to 50 Hz."""

    async def feed():
        if config is not None:
            yield pb.StreamRequest(config=config)
        for sequence, pause_s in enumerate(pauses_s, 1):
            await asyncio.sleep(pause_s)
            yield frame(sequence)
        await asyncio.sleep(0.05)

    async def collect():
        session = StreamSession(
            ScriptedAnalyzer(script), Options(audio_weight=0.3, video_weight=0.7), 50.0, max_pixels=1_000_000,
            smoothing_time_constant_s=default_s,
        )
        return [r async for r in session.results(feed())]

    responses = asyncio.run(collect())
    assert len(responses) == len(script), "one result per frame"
    return responses


def scores(values) -> np.ndarray:
    assert [s.label for s in values] == list(LABELS)
    return np.array([s.probability for s in values])


def test_the_answer_is_smoothed_and_the_instant_one_is_beside_it():
    responses = run([(HAPPY, HERE)] * 3 + [(SAD, HERE)], pauses_s=[0.1] * 4)
    last = responses[-1]
    assert last.instant_top_emotion == "sad" and last.instant_top_probability == pytest.approx(0.8)
    np.testing.assert_allclose(scores(last.instant_fused), SAD, rtol=1e-5)
    assert last.result.top_emotion == "happy", "one sad frame after happy ones does not turn the answer"
    assert last.result.top_probability == pytest.approx(scores(last.result.fused).max())
    assert last.smoothing_time_constant_s == pytest.approx(1.0)


def test_another_face_restarts_the_smoothing():
    responses = run([(HAPPY, HERE)] * 3 + [(SAD, ELSEWHERE)], pauses_s=[0.1] * 4)
    np.testing.assert_allclose(scores(responses[-1].result.fused), SAD, rtol=1e-5)


def test_the_same_face_moving_a_little_is_not_a_restart():
    moved = Box(HERE.x + 10, HERE.y + 5, HERE.width, HERE.height)
    responses = run([(HAPPY, HERE)] * 3 + [(SAD, moved)], pauses_s=[0.1] * 4)
    assert responses[-1].result.top_emotion == "happy"


def test_a_gap_without_input_restarts_the_smoothing():
    responses = run([(HAPPY, HERE)] * 3 + [(SAD, HERE)], pauses_s=[0.1, 0.1, 0.1, RESTART_AFTER_GAP_S + 0.3])
    np.testing.assert_allclose(scores(responses[-1].result.fused), SAD, rtol=1e-5)


def test_a_stream_may_turn_smoothing_off_or_set_its_own_time_constant():
    script = [(HAPPY, HERE)] * 3 + [(SAD, HERE)]
    off = run(script, [0.1] * 4, config=pb.StreamConfig(smoothing_time_constant_s=0.0))
    assert off[-1].smoothing_time_constant_s == 0.0 and off[-1].result.top_emotion == "sad"
    slow = run(script, [0.1] * 4, config=pb.StreamConfig(smoothing_time_constant_s=20.0), default_s=0.0)
    assert slow[-1].smoothing_time_constant_s == pytest.approx(20.0) and slow[-1].result.top_emotion == "happy"


def test_a_config_without_a_time_constant_keeps_the_service_default():
    responses = run([(HAPPY, HERE)], [0.0], config=pb.StreamConfig(result_rate_hz=10), default_s=2.5)
    assert responses[0].smoothing_time_constant_s == pytest.approx(2.5)


@pytest.mark.parametrize("time_constant_s", [-0.5, 31.0])
def test_an_impossible_time_constant_is_refused_naming_the_field(time_constant_s):
    with pytest.raises(InvalidInput, match="config.smoothing_time_constant_s"):
        run([(HAPPY, HERE)], [0.0], config=pb.StreamConfig(smoothing_time_constant_s=time_constant_s))


def test_a_smoothed_answer_is_judged_uncertain_on_its_own_confidence():
    leaning_happy = np.array([0.02, 0.02, 0.02, 0.6, 0.02, 0.3, 0.02], dtype=np.float32)
    leaning_sad = leaning_happy[[0, 1, 2, 5, 4, 3, 6]]
    # The sad answer comes 0.69 s (ln 2 time constants) after the happy one: the smoothed answer weighs both
    # about equally and is sure of neither (top about 0.45), though each instant answer is (0.6).
    responses = run([(leaning_happy, HERE), (leaning_sad, HERE)], pauses_s=[0.0, 0.69], default_s=1.0)
    assert [r.instant_top_probability for r in responses] == pytest.approx([0.6, 0.6])
    assert not responses[0].result.uncertain
    assert responses[1].result.uncertain and responses[1].result.uncertainty_reason == pb.LOW_CONFIDENCE
    assert responses[1].result.top_probability < UNCERTAIN_BELOW
