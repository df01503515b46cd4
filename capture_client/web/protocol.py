"""The WebSocket protocol between the page and the gateway, checked message by message.

Page -> gateway:
  1. one text message, the stream's settings: {"type": "config", "mode": "both" | "audio" | "video",
     "result_rate_hz": 5}; both keys optional.
  2. then binary messages, the first byte telling what follows:
     AUDIO (1): PCM signed 16-bit little-endian, mono, 16 kHz, whole samples, at most MAX_AUDIO_CHUNK_S;
     FRAME (2): a frame counter (uint32, little-endian) then one JPEG image, at most MAX_FRAME_BYTES.
Gateway -> page: text messages, JSON: {"type": "result", "result": <StreamResponse as proto3 JSON with the
proto's field names>} and {"type": "status", "state": "connecting" | "connected" | "reconnecting", "detail": "..."}.
A message that breaks these rules closes the WebSocket with a code and a reason that says what was wrong.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass

from google.protobuf import json_format

from capture_client.modes import MODES, stream_config
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, MAX_RESULT_RATE_HZ

AUDIO = 1
FRAME = 2
MAX_AUDIO_CHUNK_S = 0.5
MAX_AUDIO_CHUNK_BYTES = int(MAX_AUDIO_CHUNK_S * AUDIO_SAMPLE_RATE_HZ) * 2
MAX_FRAME_BYTES = 1024 * 1024
_JPEG_START = b"\xff\xd8"
_SEQUENCE = struct.Struct("<I")

# WebSocket close codes (RFC 6455, section 7.4.1).
CLOSE_POLICY = 1008  # a rule of the protocol was broken (wrong order, too fast)
CLOSE_UNSUPPORTED = 1003  # a message of a kind or format this protocol does not carry
CLOSE_TOO_BIG = 1009
CLOSE_SERVICE_REFUSED = 1011  # the fusion service refused the stream for good (e.g. bad token)


class ProtocolError(Exception):
    """A message broke the protocol; `code` and the message are what the page is told on close."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code


def parse_config(text: str) -> pb.StreamConfig:
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"the first message must be JSON settings: {error.msg}") from None
    if not isinstance(settings, dict) or settings.get("type") != "config":
        raise ProtocolError(CLOSE_POLICY, 'the first message must be {"type": "config", ...}')
    unknown = set(settings) - {"type", "mode", "result_rate_hz"}
    if unknown:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"unknown settings {sorted(unknown)}; known: mode, result_rate_hz")
    mode = settings.get("mode", "both")
    if mode not in MODES:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    rate = settings.get("result_rate_hz", 0)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= MAX_RESULT_RATE_HZ:
        raise ProtocolError(CLOSE_UNSUPPORTED, f"result_rate_hz must be a number from 0 to {MAX_RESULT_RATE_HZ:g}")
    return stream_config(mode, float(rate))


def parse_media(data: bytes) -> pb.StreamRequest:
    """One binary message as the StreamRequest it carries."""
    if not data:
        raise ProtocolError(CLOSE_UNSUPPORTED, "empty binary message")
    kind, payload = data[0], data[1:]
    if kind == AUDIO:
        if not payload or len(payload) % 2:
            raise ProtocolError(CLOSE_UNSUPPORTED, "audio must be whole 16-bit samples")
        if len(payload) > MAX_AUDIO_CHUNK_BYTES:
            raise ProtocolError(CLOSE_TOO_BIG, f"an audio chunk may hold at most {MAX_AUDIO_CHUNK_S:g} s")
        return pb.StreamRequest(audio=pb.AudioChunk(data=payload))
    if kind == FRAME:
        if len(payload) < _SEQUENCE.size + len(_JPEG_START) or payload[_SEQUENCE.size:][:2] != _JPEG_START:
            raise ProtocolError(CLOSE_UNSUPPORTED, "a frame must be a uint32 counter followed by a JPEG image")
        if len(payload) > MAX_FRAME_BYTES:
            raise ProtocolError(CLOSE_TOO_BIG, f"a frame may be at most {MAX_FRAME_BYTES // 1024} KiB")
        (sequence,) = _SEQUENCE.unpack_from(payload)
        image = pb.Image(encoded=payload[_SEQUENCE.size:])
        return pb.StreamRequest(frame=pb.Frame(image=image, sequence=sequence))
    raise ProtocolError(CLOSE_UNSUPPORTED, f"unknown message kind {kind}: 1 is audio, 2 is a frame")


def result_message(response: pb.StreamResponse) -> str:
    result = json_format.MessageToDict(
        response, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return json.dumps({"type": "result", "result": result}, separators=(",", ":"))


def status_message(state: str, detail: str) -> str:
    return json.dumps({"type": "status", "state": state, "detail": detail})


@dataclass
class RateLimit:
    """A token bucket: `rate` units per second on average, bursts up to `burst` units."""

    rate: float
    burst: float
    _tokens: float = -1.0
    _last: float = 0.0

    def allow(self, amount: float = 1.0, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self._tokens < 0:
            self._tokens, self._last = self.burst, now
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True
