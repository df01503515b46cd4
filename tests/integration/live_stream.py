"""A live client for tests: streams looping speech and a face photo at about real time from a thread,
and records every response, so a test can act on the system and then wait for the answers it expects."""

from __future__ import annotations

import threading
import time
from typing import Callable

import grpc
import pytest

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from testkit.media import face_photo, jpeg, pcm16, speech
from testkit.waiting import WAIT_S

CHUNK_S = 0.1


class LiveStream:
    def __init__(self, channel: grpc.Channel, metadata: tuple = ()):
        self.responses: list[pb.StreamResponse] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._stop = threading.Event()
        self._call = emotion_pb2_grpc.EmotionFusionStub(channel).StreamFuse(self._requests(), metadata=metadata)
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _requests(self):
        yield pb.StreamRequest(config=pb.StreamConfig(audio_encoding=pb.PCM_S16LE, audio_sample_rate_hz=16000, result_rate_hz=5))
        audio = pcm16(speech())
        frame = pb.Image(encoded=jpeg(face_photo()))
        chunk = int(16000 * CHUNK_S) * 2
        position, sequence = 0, 0
        while not self._stop.is_set():
            if position + chunk > len(audio):
                position = 0  # loop the sentence: there is speech in every window
            yield pb.StreamRequest(audio=pb.AudioChunk(data=audio[position:position + chunk]))
            position += chunk
            sequence += 1
            yield pb.StreamRequest(frame=pb.Frame(image=frame, sequence=sequence))
            time.sleep(CHUNK_S)

    def _collect(self) -> None:
        try:
            for response in self._call:
                self.responses.append(response)
        except grpc.RpcError as error:
            self.error = error
        finally:
            self.ended.set()

    def wait_for(self, condition: Callable[[pb.StreamResponse], bool], what: str, timeout_s: float = WAIT_S) -> pb.StreamResponse:
        """The first response from now on that meets `condition`; fails the test if none comes."""
        seen = len(self.responses)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for response in self.responses[seen:]:
                if condition(response):
                    return response
            seen = len(self.responses)
            if self.ended.is_set():
                pytest.fail(f"stream ended ({self.error!r}) while waiting for {what}")
            time.sleep(0.05)
        last = self.responses[-1].result if self.responses else None
        pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}; last result: {last}")

    def close(self) -> None:
        """Stop sending: the service answers what is pending and ends the stream."""
        self._stop.set()
        self.ended.wait(WAIT_S)
