"""One live stream: a sliding audio window (featurised as it arrives: features/audio_stream.py), the latest frame,
and results at a steady rate.

Frames are checked (format, size) when they arrive but kept encoded until a result is due, and only
the newest one is analysed: a client sending faster than the service can process has its older frames
dropped, never queued. The answer follows one face from frame to frame (face_tracking.py), and is smoothed over
time (protos/emotion/v1/smoothing.py), afresh when that face gives way to another. Each frame is searched around
the faces of the last one first (features/faces/search.py); a frame that repeats the last one searched whole is not
searched again (repeated_frames.py). When the service shuts down, each stream gets a last message with final=true.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

import numpy as np

from fusion_service.analysis import Analyzer, Options, Outcome, resolve_options, set_answer
from fusion_service.decoding import InvalidInput, check_audio_format, check_image, decode_pcm
from fusion_service.face_tracking import continues
from fusion_service.features.faces.boxes import Box
from fusion_service.metrics import DROPPED_FRAMES, REPEATED_FRAMES, Stage, timed
from fusion_service.repeated_frames import SeenFrame
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, MAX_AUDIO_CHUNK_SECONDS, MAX_RESULT_RATE_HZ
from protos.emotion.v1.smoothing import DEFAULT_TIME_CONSTANT_S, MAX_TIME_CONSTANT_S, Smoother

DEFAULT_ENCODING = pb.PCM_S16LE


class StreamSession:
    def __init__(
        self,
        analyzer: Analyzer,
        defaults: Options,
        default_rate_hz: float,
        max_pixels: int,
        *,
        closing: asyncio.Event | None = None,
        deadline: float | None = None,
        smoothing_time_constant_s: float = DEFAULT_TIME_CONSTANT_S,
    ):
        """`closing` set: send a final message and end. `deadline` (time.monotonic()): the stream's own.
        `smoothing_time_constant_s`: the default; a StreamConfig may set its own."""
        self._analyzer = analyzer
        self._closing = closing or asyncio.Event()
        self._deadline = deadline
        self._options = defaults
        self._rate_hz = default_rate_hz
        self._max_pixels = max_pixels
        self._encoding = DEFAULT_ENCODING
        self._sample_rate = AUDIO_SAMPLE_RATE_HZ
        self._audio = analyzer.streaming_audio(self._sample_rate)
        self._started = False
        self._new_audio = False
        self._frame: pb.Frame | None = None
        self._frames_dropped = 0
        self._last_sequence = 0
        self._audio_outcome = Outcome(pb.ABSENT, "no audio received on this stream yet")
        self._video_outcome = Outcome(pb.ABSENT, "no frame received on this stream yet")
        self._followed_face: Box | None = None  # the main face of the last frame that had one
        self._face_search = analyzer.face_search()
        self._seen_frame: SeenFrame | None = None  # the last frame searched whole
        self._smoother = Smoother(smoothing_time_constant_s)
        self._input_arrived = asyncio.Event()

    def accept(self, request: pb.StreamRequest) -> None:
        """Take one client message; raises InvalidInput for a malformed one."""
        kind = request.WhichOneof("payload")
        if kind == "config":
            if self._started:
                raise InvalidInput("config: send StreamConfig only as the first message of the stream")
            self._configure(request.config)
        elif kind == "audio":
            samples = decode_pcm(
                request.audio.data, self._encoding, self._sample_rate, max_seconds=MAX_AUDIO_CHUNK_SECONDS, field="audio chunk"
            )
            if len(samples):
                self._audio.append(samples)
                self._new_audio = True
        elif kind == "frame":
            if not request.frame.HasField("image"):
                raise InvalidInput("frame: image is required")
            check_image(request.frame.image, max_pixels=self._max_pixels, field="frame.image")
            if self._frame is not None:
                self._frames_dropped += 1
                DROPPED_FRAMES.inc()
            self._frame = request.frame
        else:
            raise InvalidInput("stream message: set one of config, audio or frame")
        self._started = True
        self._input_arrived.set()

    def _configure(self, config: pb.StreamConfig) -> None:
        encoding = config.audio_encoding or DEFAULT_ENCODING
        sample_rate = config.audio_sample_rate_hz or AUDIO_SAMPLE_RATE_HZ
        check_audio_format(encoding, sample_rate, field="config")
        if config.result_rate_hz < 0 or config.result_rate_hz > MAX_RESULT_RATE_HZ or not np.isfinite(config.result_rate_hz):
            raise InvalidInput(f"config.result_rate_hz must be between 0 (default) and {MAX_RESULT_RATE_HZ:g}")
        self._encoding, self._sample_rate = encoding, sample_rate
        self._audio = self._analyzer.streaming_audio(sample_rate)
        self._rate_hz = config.result_rate_hz or self._rate_hz
        if config.HasField("options"):
            self._options = resolve_options(config.options, self._options)
        if config.HasField("smoothing_time_constant_s"):
            time_constant_s = config.smoothing_time_constant_s
            if not 0 <= time_constant_s <= MAX_TIME_CONSTANT_S:
                raise InvalidInput(
                    f"config.smoothing_time_constant_s must be between 0 (no smoothing) and {MAX_TIME_CONSTANT_S:g} s, "
                    f"got {time_constant_s}"
                )
            self._smoother = Smoother(time_constant_s)

    async def results(self, requests: AsyncIterator[pb.StreamRequest]) -> AsyncIterator[pb.StreamResponse]:
        """Read requests in the background; yield a result each period in which new input arrived."""
        reader = asyncio.create_task(self._read(requests))
        closing = asyncio.ensure_future(self._closing.wait())
        waiter: asyncio.Future | None = None
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        try:
            while True:
                if waiter is None or waiter.done():
                    waiter = asyncio.ensure_future(self._input_arrived.wait())
                await asyncio.wait([reader, waiter, closing], return_when=asyncio.FIRST_COMPLETED)
                if not closing.done():
                    if reader.done():
                        reader.result()  # re-raises a malformed-input error
                        if not self._pending():
                            return
                    else:
                        # Never answer faster than the result rate.
                        delay = next_tick - loop.time()
                        if delay > 0:
                            await asyncio.wait([closing], timeout=delay)
                if closing.done():
                    yield self._final()
                    return
                next_tick = max(next_tick + 1.0 / self._rate_hz, loop.time())
                if self._pending():
                    yield await self._result()
                else:
                    self._input_arrived.clear()  # a config alone: nothing to answer, wait for real input
        finally:
            for task in (reader, closing, waiter):
                if task is not None:
                    task.cancel()
            # An exception leaving this frame holds it in its traceback; were the reader task (which holds
            # that exception) still referenced here, the cycle would keep the session's buffers in memory
            # until the cyclic garbage collector runs.
            reader = closing = waiter = None

    async def _read(self, requests: AsyncIterator[pb.StreamRequest]) -> None:
        async for request in requests:
            self.accept(request)

    def _pending(self) -> bool:
        return self._new_audio or self._frame is not None

    async def _result(self) -> pb.StreamResponse:
        self._input_arrived.clear()
        with timed(Stage.TOTAL):
            audio_task = video_task = None
            if self._frame is not None:
                frame, self._frame = self._frame, None
                self._last_sequence = frame.sequence
                video_task = self._video(frame)
            if self._new_audio:
                self._new_audio = False
                audio_task = self._analyzer.stream_audio(
                    self._audio, self._audio.snapshot(), self._options.use_audio, self._deadline
                )
            outcomes = await asyncio.gather(*(t for t in (audio_task, video_task) if t is not None))
            if audio_task is not None:
                self._audio_outcome = outcomes.pop(0)
            if video_task is not None:
                self._video_outcome = outcomes.pop(0)
                new_face = self._video_outcome.primary_box
                if new_face is not None and self._followed_face is not None and not continues(new_face, self._followed_face):
                    self._smoother.restart()  # someone else: their answer owes nothing to the last person's
                # Kept through frames without a face: a face missed once is followed again when it is back.
                self._followed_face = self._video_outcome.primary_box or self._followed_face
            return self._response()

    async def _video(self, frame: pb.Frame) -> Outcome:
        """The frame's video outcome; a repeat of the last frame searched whole keeps its faces, and its outcome
        while that holds (repeated_frames.py)."""
        loop = asyncio.get_running_loop()
        seen = self._seen_frame
        if seen is not None and seen.shows(frame.image):
            if seen.outcome_holds(loop.time()):
                REPEATED_FRAMES.labels("outcome").inc()
                return seen.outcome
            REPEATED_FRAMES.labels("faces").inc()
            seen.outcome = await self._analyzer.classify(seen.faces, self._deadline, self._followed_face)
            seen.outcome_at = loop.time()
            return seen.outcome
        if not self._options.use_video:
            return await self._analyzer.video(frame.image, enabled=False)
        faces = await self._analyzer.find_faces(
            frame.image, self._face_search, max_pixels=self._max_pixels, field="frame.image"
        )
        outcome = await self._analyzer.classify(faces, self._deadline, self._followed_face)
        self._seen_frame = SeenFrame(frame.image, faces, outcome, loop.time()) if faces.whole_frame else None
        return outcome

    def _final(self) -> pb.StreamResponse:
        """The last message of a stream the service closes: the latest outcomes, marked final."""
        response = self._response()
        response.final = True
        return response

    def _response(self) -> pb.StreamResponse:
        """The latest outcomes fused; the answer smoothed, the instant one beside it."""
        response = pb.StreamResponse(
            result=self._analyzer.response(self._audio_outcome, self._video_outcome, self._options),
            frame_sequence=self._last_sequence,
            audio_end_seconds=self._audio.total / self._sample_rate,
            frames_dropped=self._frames_dropped,
            smoothing_time_constant_s=self._smoother.time_constant_s,
        )
        result = response.result
        response.instant_fused.extend(result.fused)
        response.instant_top_emotion = result.top_emotion
        response.instant_top_probability = result.top_probability
        instant = np.array([score.probability for score in result.fused]) if result.fused else None
        smoothed = self._smoother.update(asyncio.get_running_loop().time(), instant)
        if smoothed is not None:
            set_answer(result, smoothed, disagree=result.uncertainty_reason == pb.MODALITIES_DISAGREE)
        return response
