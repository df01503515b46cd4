"""StreamSession without gRPC: a fake analyzer records what it was asked to analyse."""

from __future__ import annotations

import asyncio

import cv2
import numpy as np
import pytest

from fusion_service.analysis import Faces, Options, Outcome
from fusion_service.decoding import InvalidInput
from fusion_service.features.faces.boxes import Box
from fusion_service.features.audio import AudioFeatureExtractor
from fusion_service.features.audio_stream import StreamingAudio
from fusion_service.features.speech import SpeechDetector
from fusion_service.stream import StreamSession
from protos.emotion.v1 import emotion_pb2 as pb

PNG = cv2.imencode(".png", np.full((32, 32), 128, dtype=np.uint8))[1].tobytes()


class FindsOneFace:
    """What a stream asks a fake analyzer for before classifying: one face in every frame, found by a search
    around the last faces (not the whole frame), so that every frame is searched, repeated or not
    (test_repeated_frames.py covers repeats)."""

    def face_search(self):
        return None  # a stream's own face search: these fakes find faces without one

    def streaming_audio(self, sample_rate):
        return StreamingAudio(AudioFeatureExtractor(), SpeechDetector(), sample_rate)

    async def stream_audio(self, audio, snapshot, enabled=True, deadline=None):
        return await self.audio(snapshot.samples, audio.sample_rate, enabled, deadline)

    async def find_faces(self, image, search=None, **decoding):
        return Faces([Box(0, 0, 16, 16)], np.zeros((1, 48, 48, 1), dtype=np.float32), whole_frame=False)


class FakeAnalyzer(FindsOneFace):
    def __init__(self, delay_s: float = 0.0):
        self.audio_windows: list[np.ndarray] = []
        self.images = 0
        self.delay_s = delay_s

    async def audio(self, samples, sample_rate, enabled=True, deadline=None):
        self.audio_windows.append(samples)
        return Outcome(pb.USED, probabilities=np.full(7, 1 / 7, dtype=np.float32), version=1)

    async def find_faces(self, image, search=None, **decoding):
        self.images += 1
        await asyncio.sleep(self.delay_s)
        return await super().find_faces(image, search, **decoding)

    async def classify(self, faces, deadline=None, follow=None):
        return Outcome(pb.USED, probabilities=np.eye(7, dtype=np.float32)[3], version=1)

    def response(self, audio, video, options):
        return pb.FuseResponse(audio=pb.ModalityResult(status=audio.status), video=pb.ModalityResult(status=video.status))


def session(analyzer, rate_hz=50.0, closing=None):
    return StreamSession(
        analyzer, Options(audio_weight=0.3, video_weight=0.7), rate_hz, max_pixels=1_000_000, closing=closing
    )


async def feed(messages, pause_s=0.0):
    for message in messages:
        yield message
        await asyncio.sleep(pause_s)


def chunk(n, value=0.1):
    return pb.StreamRequest(audio=pb.AudioChunk(data=(np.full(n, value) * 32767).astype("<i2").tobytes()))


def frame(sequence):
    return pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=PNG), sequence=sequence))


async def collect(stream_session, messages, pause_s=0.0):
    return [r async for r in stream_session.results(feed(messages, pause_s))]


def test_results_carry_the_latest_frame_and_the_audio_clock():
    analyzer = FakeAnalyzer()
    messages = [pb.StreamRequest(config=pb.StreamConfig(audio_sample_rate_hz=16000, result_rate_hz=30))]
    messages += [m for i in range(10) for m in (chunk(320), frame(i + 1))]
    responses = asyncio.run(collect(session(analyzer, rate_hz=30), messages, pause_s=0.01))
    assert responses, "no result"
    assert responses[-1].frame_sequence == 10
    assert responses[-1].audio_end_seconds == pytest.approx(10 * 320 / 16000)
    assert responses[-1].result.audio.status == pb.USED and responses[-1].result.video.status == pb.USED
    # The audio window handed to the model grows with the stream, up to the 2 s window.
    assert len(analyzer.audio_windows[-1]) == 10 * 320


def test_frames_arriving_faster_than_results_are_dropped_not_queued():
    analyzer = FakeAnalyzer(delay_s=0.05)
    messages = [frame(i + 1) for i in range(60)]
    responses = asyncio.run(collect(session(analyzer, rate_hz=10), messages, pause_s=0.002))
    assert analyzer.images < 20
    assert responses[-1].frames_dropped == 60 - analyzer.images
    assert responses[-1].frame_sequence == 60


def test_results_never_come_faster_than_the_configured_rate():
    analyzer = FakeAnalyzer()
    messages = [chunk(160) for _ in range(100)]

    async def timed_run():
        loop = asyncio.get_running_loop()
        start = loop.time()
        responses = await collect(session(analyzer, rate_hz=10), messages, pause_s=0.005)
        return responses, loop.time() - start

    responses, took = asyncio.run(timed_run())
    assert len(responses) <= took * 10 + 2


def test_malformed_messages_end_the_stream_with_a_clear_error():
    with pytest.raises(InvalidInput, match="first message"):
        asyncio.run(collect(session(FakeAnalyzer()), [chunk(160), pb.StreamRequest(config=pb.StreamConfig())]))
    with pytest.raises(InvalidInput, match="whole number"):
        asyncio.run(collect(session(FakeAnalyzer()), [pb.StreamRequest(audio=pb.AudioChunk(data=b"\x00"))]))
    with pytest.raises(InvalidInput, match="sample_rate_hz"):
        asyncio.run(collect(session(FakeAnalyzer()), [pb.StreamRequest(config=pb.StreamConfig(audio_sample_rate_hz=5))]))
    with pytest.raises(InvalidInput, match="neither JPEG nor PNG"):
        bad = pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=b"junk"), sequence=1))
        asyncio.run(collect(session(FakeAnalyzer()), [bad]))


def test_a_bad_frame_is_refused_on_arrival_even_when_a_newer_one_would_replace_it():
    bad = pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=PNG[:20]), sequence=1))
    analyzer = FakeAnalyzer()
    with pytest.raises(InvalidInput, match="frame.image: PNG without an IHDR header"):
        asyncio.run(collect(session(analyzer, rate_hz=1), [frame(1), bad, frame(3)]))


def test_closing_sends_one_final_message_with_the_latest_outcomes_and_ends_the_stream():
    async def run():
        closing = asyncio.Event()
        responses = []

        async def endless_input():
            sequence = 0
            while True:
                sequence += 1
                yield frame(sequence)
                await asyncio.sleep(0.01)

        async for response in session(FakeAnalyzer(), rate_hz=20, closing=closing).results(endless_input()):
            responses.append(response)
            if len(responses) == 3:
                closing.set()
        return responses

    responses = asyncio.run(run())
    assert [r.final for r in responses] == [False, False, False, True]
    assert responses[-1].result.video.status == pb.USED
    assert responses[-1].frame_sequence == responses[-2].frame_sequence
