"""Thin gRPC layer: parse and validate requests, hand the work to Analyzer, map errors to status codes.

Logs carry request ids, statuses and timings only, never media.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from contextlib import aclosing
from typing import AsyncIterator, Callable

import grpc

from fusion_service.analysis import Analyzer, Options, resolve_options
from fusion_service.config import Settings
from fusion_service.decoding import InvalidInput, check_image, decode_audio
from fusion_service.limits import LimitExceeded, StreamLimiter
from fusion_service.metrics import ACTIVE_STREAMS, Stage, timed
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


def caller_deadline(context: grpc.aio.ServicerContext) -> float | None:
    """The caller's deadline as a time.monotonic() instant; None when it set none."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


def _modality_summary(response: pb.FuseResponse) -> str:
    return "; ".join(
        f"{name} {pb.ModalityStatus.Name(result.status)}" + (f": {result.reason}" if result.reason else "")
        for name, result in (("audio", response.audio), ("video", response.video))
    )


class EmotionFusionServicer(emotion_pb2_grpc.EmotionFusionServicer):
    def __init__(
        self,
        analyzer: Analyzer,
        settings: Settings,
        limiter: StreamLimiter,
        identify: Callable[[grpc.aio.ServicerContext], str],
    ):
        """`identify` names the client of a call, for the per-client limits."""
        self._analyzer = analyzer
        self._settings = settings
        self._limiter = limiter
        self._identify = identify
        self._defaults = Options(
            audio_weight=settings.audio_weight, video_weight=settings.video_weight, method=settings.fusion_method
        )
        self._closing = asyncio.Event()

    def close_streams(self) -> None:
        """Shutting down: every open stream (and any opened from now on) sends a final message and ends."""
        self._closing.set()

    async def Fuse(self, request: pb.FuseRequest, context: grpc.aio.ServicerContext) -> pb.FuseResponse | None:
        rid = request_id(context)
        start = time.perf_counter()
        try:
            response = await self._fuse(request, context)
        except InvalidInput as error:
            return self._refuse(context, "Fuse", rid, grpc.StatusCode.INVALID_ARGUMENT, str(error))
        if not response.fused and pb.MODEL_UNAVAILABLE in (response.audio.status, response.video.status):
            # Nothing to answer because a model server failed: a retry later may succeed.
            return self._refuse(
                context, "Fuse", rid, grpc.StatusCode.UNAVAILABLE,
                f"no model server could answer this request; retry later ({_modality_summary(response)})",
            )
        response.request_id = rid
        log.info(
            "Fuse request_id=%s audio=%s video=%s faces=%d top=%s took=%.1fms",
            rid, pb.ModalityStatus.Name(response.audio.status), pb.ModalityStatus.Name(response.video.status),
            len(response.faces), response.top_emotion or "-", (time.perf_counter() - start) * 1000,
        )
        return response

    async def _fuse(self, request: pb.FuseRequest, context: grpc.aio.ServicerContext) -> pb.FuseResponse:
        """Check and decode every field (raising InvalidInput), then analyse."""
        if not request.HasField("audio") and not request.HasField("image"):
            raise InvalidInput("request carries neither audio nor image; send one or both")
        options = resolve_options(request.options, self._defaults)
        # "total" spans decoding too, as in a stream's result: the whole work of one answer.
        max_pixels = self._settings.max_image_pixels
        with timed(Stage.TOTAL):
            with timed(Stage.DECODE):
                samples = (
                    decode_audio(request.audio, max_seconds=self._settings.max_audio_seconds)
                    if request.HasField("audio") else None
                )
                image = request.image if request.HasField("image") else None
                if image is not None:
                    check_image(image, max_pixels=max_pixels)  # a malformed request fails before any work
            return await self._analyzer.fuse(
                samples, request.audio.sample_rate_hz, image, options, max_pixels=max_pixels,
                deadline=caller_deadline(context),
            )

    async def StreamFuse(
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        rid = request_id(context)
        try:
            with self._limiter.stream(self._identify(context)):
                async with aclosing(self._stream(rid, request_iterator, context)) as responses:
                    async for response in responses:
                        yield response
        except LimitExceeded as error:
            self._refuse(context, "StreamFuse", rid, grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        except InvalidInput as error:
            self._refuse(context, "StreamFuse", rid, grpc.StatusCode.INVALID_ARGUMENT, str(error))

    async def _stream(
        self, rid: str, request_iterator: AsyncIterator[pb.StreamRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResponse]:
        session = StreamSession(
            self._analyzer, self._defaults, self._settings.stream_result_rate_hz, self._settings.max_image_pixels,
            closing=self._closing, deadline=caller_deadline(context),
            smoothing_time_constant_s=self._settings.smoothing_time_constant_s,
        )
        ACTIVE_STREAMS.inc()
        start = time.perf_counter()
        log.info("stream opened request_id=%s", rid)
        results = 0
        try:
            async with aclosing(session.results(request_iterator)) as responses:
                async for response in responses:
                    response.result.request_id = rid
                    results += 1
                    yield response
        finally:
            ACTIVE_STREAMS.dec()
            log.info("stream closed request_id=%s results=%d took=%.1fs", rid, results, time.perf_counter() - start)

    @staticmethod
    def _refuse(context: grpc.aio.ServicerContext, method: str, rid: str, code: grpc.StatusCode, message: str) -> None:
        """End the call with `code` once the handler returns.

        Not context.abort(): the exception it raises stays on the call's state with the handler's frames
        in its traceback, a reference cycle that keeps the request's media in memory until the cyclic
        garbage collector runs, which a flood of bad requests can outpace.
        """
        log.info("%s request_id=%s refused: %s: %s", method, rid, code.name, message)
        context.set_code(code)
        context.set_details(message)
