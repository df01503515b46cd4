"""Single round trips, one at a time over loopback: Predict to each model server, Fuse to the fusion service."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np

from bench.media import Media, face_pipeline
from bench.stats import Summary, summarise, time_calls
from fusion_service.analysis import audio_contract, video_contract
from fusion_service.features.audio import AudioFeatureExtractor
from fusion_service.model_client import ModelClient
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ

TIMEOUT_S = 10.0


def model_inputs(media: Media) -> dict[str, np.ndarray]:
    """What a Fuse call of the benchmark media sends each model: one window's features, one face crop."""
    _, crops = face_pipeline().faces(media.frame_decoded)
    return {"audio": AudioFeatureExtractor().batch(media.speech_window[np.newaxis]), "video": crops[:1]}


async def _predict_times(client: ModelClient, batch: np.ndarray, runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await client.predict(batch)
    durations = []
    for _ in range(runs):
        start = time.perf_counter()
        await client.predict(batch)
        durations.append((time.perf_counter() - start) * 1000.0)
    return durations


async def _predict_all(targets: dict[str, str], inputs: dict[str, np.ndarray], runs: int) -> dict[str, Summary]:
    contracts = {"audio": audio_contract("audio"), "video": video_contract("video")}
    figures = {}
    for name, target in targets.items():
        # The service's own client (one long-lived channel, tensor packing included), as a Fuse call uses it.
        client = ModelClient(target, contracts[name], TIMEOUT_S)
        try:
            figures[name] = summarise(await _predict_times(client, inputs[name], runs, warmup=10))
        finally:
            await client.close()
    return figures


def predict(targets: dict[str, str], media: Media, runs: int) -> dict[str, Summary]:
    """Milliseconds per Predict round trip to each model server (model name -> summary)."""
    return asyncio.run(_predict_all(targets, model_inputs(media), runs))


def fuse_request(media: Media) -> pb.FuseRequest:
    return pb.FuseRequest(
        audio=pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, data=media.speech_window_pcm16),
        image=pb.Image(encoded=media.frame_jpeg),
    )


class FuseClient:
    """Fuse calls of the benchmark media over one loopback channel."""

    def __init__(self, target: str, media: Media):
        self._channel = grpc.insecure_channel(target)
        self._stub = emotion_pb2_grpc.EmotionFusionStub(self._channel)
        self._request = fuse_request(media)

    def __enter__(self) -> "FuseClient":
        return self

    def __exit__(self, *exc) -> None:
        self._channel.close()

    def call(self) -> pb.FuseResponse:
        return self._stub.Fuse(self._request, timeout=TIMEOUT_S)

    def check(self) -> None:
        """Both modalities must be used, or the figures would time something else than a full Fuse."""
        response = self.call()
        if response.audio.status != pb.USED or response.video.status != pb.USED:
            raise RuntimeError(
                "a benchmark Fuse call must use both modalities, got "
                f"audio {pb.ModalityStatus.Name(response.audio.status)} ({response.audio.reason}), "
                f"video {pb.ModalityStatus.Name(response.video.status)} ({response.video.reason})"
            )

    def times(self, runs: int) -> Summary:
        """Milliseconds per call, end to end, one call at a time."""
        return summarise(time_calls(self.call, runs, warmup=0))
