"""One browser stream's way to the fusion service: a StreamFuse call, reopened with back-off while the page stays.

Like the service, the bridge keeps only what has not been sent yet: the newest frame (an older one waiting is
dropped) and at most MAX_PENDING_AUDIO_S of audio (the oldest goes first).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from capture_client.connection import FATAL_CODES, Backoff
from capture_client.web.protocol import CLOSE_SERVICE_REFUSED, ProtocolError, result_message, status_message
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ

log = logging.getLogger(__name__)

MAX_PENDING_AUDIO_S = 2.0
_MAX_PENDING_AUDIO_BYTES = int(MAX_PENDING_AUDIO_S * AUDIO_SAMPLE_RATE_HZ) * 2

Send = Callable[[str], Awaitable[None]]


class StreamBridge:
    def __init__(self, config: pb.StreamConfig, stub: emotion_pb2_grpc.EmotionFusionStub,
                 metadata: tuple[tuple[str, str], ...], send: Send, backoff: Backoff | None = None):
        self._config = config
        self._stub = stub
        self._metadata = metadata
        self._send = send
        self._backoff = backoff or Backoff()
        self._frame: pb.StreamRequest | None = None
        self._audio: collections.deque[pb.StreamRequest] = collections.deque()
        self._audio_bytes = 0
        self._wake = asyncio.Event()
        self.frames_dropped = 0
        self.audio_dropped_bytes = 0

    def push(self, request: pb.StreamRequest) -> None:
        if request.HasField("frame"):
            if self._frame is not None:
                self.frames_dropped += 1
            self._frame = request
        else:
            self._audio.append(request)
            self._audio_bytes += len(request.audio.data)
            while self._audio_bytes > _MAX_PENDING_AUDIO_BYTES:
                dropped = self._audio.popleft()
                self._audio_bytes -= len(dropped.audio.data)
                self.audio_dropped_bytes += len(dropped.audio.data)
        self._wake.set()

    async def _requests(self) -> AsyncIterator[pb.StreamRequest]:
        yield pb.StreamRequest(config=self._config)
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._audio:
                request = self._audio.popleft()
                self._audio_bytes -= len(request.audio.data)
                yield request
            if self._frame is not None:
                request, self._frame = self._frame, None
                yield request

    async def run(self) -> None:
        """Stream until cancelled; raises ProtocolError when the service refuses the stream for good."""
        while True:
            reason = await self._stream_once()
            delay = self._backoff.next_delay()
            await self._send(status_message("reconnecting", f"{reason}; reconnecting in {delay:.1f} s"))
            await asyncio.sleep(delay)

    async def _stream_once(self) -> str:
        call = self._stub.StreamFuse(self._requests(), metadata=self._metadata)
        try:
            await call.wait_for_connection()
            await self._send(status_message("connected", "connected to the fusion service"))
            async for response in call:
                self._backoff.reset()
                await self._send(result_message(response))
                if response.final:
                    return "the fusion service is shutting down"
            return "the fusion service ended the stream"
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if code in FATAL_CODES:
                raise ProtocolError(CLOSE_SERVICE_REFUSED, f"{FATAL_CODES[code]} ({code.name})") from None
            log.info("stream to the fusion service ended: %s %s", code.name, error.details())
            return f"lost the fusion service ({code.name})"
        finally:
            call.cancel()
