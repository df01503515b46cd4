"""The fusion service run in-process (FusionService) against two FakeModelServers, for tests that need to
steer the model servers: fail them, hang them, bring them back."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusion_service.analysis import audio_contract, video_contract
from fusion_service.fusion import learned_parameters
from fusion_service.config import Settings
from fusion_service.server import FusionService
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from protos.emotion.v1.constants import LABELS
from testkit.media import face_photo, jpeg, pcm16, speech
from tests.service.fake_model_server import FakeModelServer

SAD = np.eye(len(LABELS), dtype=np.float32)[LABELS.index("sad")]
HAPPY = np.eye(len(LABELS), dtype=np.float32)[LABELS.index("happy")]
WAIT_S = 60.0  # upper bound for something that should happen; never a measured time


@functools.cache
def face_jpeg() -> bytes:
    return jpeg(face_photo())


@functools.cache
def speech_pcm() -> bytes:
    return pcm16(speech(2.0))


def good_request() -> pb.FuseRequest:
    """Speech and a face: with the fakes, the audio model says sad and the video model happy."""
    return pb.FuseRequest(
        audio=pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=16000, data=speech_pcm()),
        image=pb.Image(encoded=face_jpeg()),
    )


@dataclasses.dataclass
class Running:
    service: FusionService
    audio: FakeModelServer
    video: FakeModelServer
    channel: grpc.aio.Channel

    @property
    def stub(self) -> emotion_pb2_grpc.EmotionFusionStub:
        return emotion_pb2_grpc.EmotionFusionStub(self.channel)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.service.port}"

    async def health(self) -> int:
        reply = await health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=WAIT_S)
        return reply.status

    async def wait_health(self, status: int) -> None:
        await wait_until(lambda: self.health_is(status), f"health {health_pb2.HealthCheckResponse.ServingStatus.Name(status)}")

    async def health_is(self, status: int) -> bool:
        return await self.health() == status


async def wait_until(condition: Callable, what: str, timeout_s: float = WAIT_S) -> None:
    """Poll an async condition until it holds; fail saying what did not happen."""
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_service(video_mode: str = "answer", **settings: object) -> AsyncIterator[Running]:
    """FusionService on a free port with the fakes answering (the video one in `video_mode` from the
    start); `settings` override Settings' defaults."""
    # The model versions the learned fusion was fitted for, as a real stack serves them.
    fitted = learned_parameters().fitted_for
    audio = FakeModelServer(audio_contract("audio"), SAD, version=fitted["audio_model_version"])
    video = FakeModelServer(video_contract("video"), HAPPY, version=fitted["video_model_version"])
    video.mode = video_mode
    await audio.start()
    await video.start()
    defaults = dict(
        host="127.0.0.1", port=0, metrics_port=0, model_check_interval_s=0.05, shutdown_grace_s=5.0,
        predict_timeout_s=10.0, audio_model_target=audio.target, video_model_target=video.target,
    )
    service = FusionService(Settings(**{**defaults, **settings}))
    await service.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
    try:
        yield Running(service, audio, video, channel)
    finally:
        await channel.close()
        await service.stop()
        await asyncio.gather(audio.stop(), video.stop())
