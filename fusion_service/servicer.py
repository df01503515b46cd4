"""Thin gRPC layer: parse and validate requests, hand the work to Analyzer, map errors to status codes."""

from __future__ import annotations

import logging
import time
import uuid
from typing import AsyncIterator

import grpc

from fusion_service.analysis import Analyzer, Options, resolve_options
from fusion_service.config import Settings
from fusion_service.decoding import InvalidInput, decode_audio, decode_image
from fusion_service.metrics import ACTIVE_STREAMS, RPC_ERRORS, timed
from fusion_service.stream import StreamSession
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc

log = logging.getLogger(__name__)


def request_id(context: grpc.aio.ServicerContext) -> str:
    """The caller's x-request-id if it sent one (for tracing across services), else a new id."""
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id" and value:
            return str(value)[:64]
    return uuid.uuid4().hex[:16]


class EmotionFusionServicer(emotion_pb2_grpc.EmotionFusionServicer):
    def __init__(self, analyzer: Analyzer, settings: Settings):
        self._analyzer = analyzer
        self._settings = settings
        self._defaults = Options(audio_weight=settings.audio_weight, video_weight=settings.video_weight)

    async def Fuse(self, request: pb.FuseRequest, context: grpc.aio.ServicerContext) -> pb.FuseResponse:
        rid = request_id(context)
        start = time.perf_counter()
        try:
            options = resolve_options(request.options, self._defaults)
            with timed("decode"):
                samples = (
                    decode_audio(request.audio, max_seconds=self._settings.max_audio_seconds)
                    if request.HasField("audio") else None
                )
                image = decode_image(request.image, max_pixels=self._settings.max_image_pixels) if request.HasField("image") else None
        except InvalidInput as error:
            await self._fail(context, "Fuse", rid, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        with timed("total"):
            response = await self._analyzer.fuse(samples, request.audio.sample_rate_hz, image, options)
        response.request_id = rid
        log.info(
            "Fuse request_id=%s audio=%s video=%s faces=%d top=%s took=%.1fms",
            rid, pb.ModalityStatus.Name(response.audio.status), pb.ModalityStatus.Name(response.video.status),
            len(response.faces), response.top_emotion or "-", (time.perf_counter() - start) * 1000,
        )
        return response

    async def StreamFuse(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        rid = request_id(context)
        session = StreamSession(
            self._analyzer, self._defaults, self._settings.stream_result_rate_hz, self._settings.max_image_pixels
        )
        ACTIVE_STREAMS.inc()
        log.info("stream opened request_id=%s", rid)
        results = 0
        try:
            async for response in session.results(request_iterator):
                response.result.request_id = rid
                results += 1
                yield response
        except InvalidInput as error:
            await self._fail(context, "StreamFuse", rid, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        finally:
            ACTIVE_STREAMS.dec()
            log.info("stream closed request_id=%s results=%d", rid, results)

    @staticmethod
    async def _fail(context: grpc.aio.ServicerContext, method: str, rid: str, code: grpc.StatusCode, message: str) -> None:
        RPC_ERRORS.labels(method, code.name).inc()
        log.info("%s request_id=%s refused: %s: %s", method, rid, code.name, message)
        await context.abort(code, message)
