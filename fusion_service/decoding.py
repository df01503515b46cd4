"""Turn request fields into arrays, refusing malformed input with a message that says what is accepted.

Image sizes are read from the PNG or JPEG header and checked before anything is decoded, so a small
file that declares a huge image (a decompression bomb) never allocates its pixels. Other formats are
refused: the API accepts JPEG and PNG only, which also keeps OpenCV's other decoders out of reach.
"""

from __future__ import annotations

import struct

import cv2
import numpy as np

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import MAX_AUDIO_SAMPLE_RATE_HZ, MIN_AUDIO_SAMPLE_RATE_HZ

MIN_IMAGE_SIDE = 16

_SAMPLE_WIDTH = {pb.PCM_S16LE: 2, pb.PCM_F32LE: 4}
_CHANNELS = {pb.BGR8: 3, pb.GRAY8: 1}

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic); C4, C8 and CC are not frames.
_JPEG_FRAME_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers without a length field.
_JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01}


class InvalidInput(ValueError):
    """A request field is malformed. The message names the field and what is accepted."""


def _enum_name(enum, value: int) -> str:
    return enum.Name(value) if value in enum.values() else str(value)


def check_audio_format(encoding: int, sample_rate_hz: int, field: str = "audio") -> None:
    if encoding not in _SAMPLE_WIDTH:
        raise InvalidInput(
            f"{field}: encoding must be PCM_S16LE or PCM_F32LE, got {_enum_name(pb.AudioEncoding, encoding)}"
        )
    if not MIN_AUDIO_SAMPLE_RATE_HZ <= sample_rate_hz <= MAX_AUDIO_SAMPLE_RATE_HZ:
        raise InvalidInput(
            f"{field}: sample_rate_hz must be between {MIN_AUDIO_SAMPLE_RATE_HZ} and {MAX_AUDIO_SAMPLE_RATE_HZ}, "
            f"got {sample_rate_hz}"
        )


def decode_pcm(data: bytes, encoding: int, sample_rate_hz: int, *, max_seconds: float, field: str = "audio") -> np.ndarray:
    """Mono float32 samples in [-1, 1] from raw little-endian PCM bytes."""
    check_audio_format(encoding, sample_rate_hz, field)
    width = _SAMPLE_WIDTH[encoding]
    if len(data) % width:
        raise InvalidInput(f"{field}: {len(data)} bytes is not a whole number of {width}-byte samples")
    count = len(data) // width
    if count > max_seconds * sample_rate_hz:
        raise InvalidInput(
            f"{field}: {count / sample_rate_hz:.1f} s of audio is longer than the {max_seconds:g} s accepted"
        )
    if encoding == pb.PCM_S16LE:
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    samples = np.frombuffer(data, dtype="<f4").astype(np.float32)
    if not np.isfinite(samples).all():
        raise InvalidInput(f"{field}: float samples must be finite (found NaN or infinity)")
    return np.clip(samples, -1.0, 1.0)


def decode_audio(audio: pb.Audio, *, max_seconds: float) -> np.ndarray:
    if not audio.data:
        raise InvalidInput("audio: data is empty; leave the audio field out to send no audio")
    return decode_pcm(audio.data, audio.encoding, audio.sample_rate_hz, max_seconds=max_seconds)


def check_image(image: pb.Image, *, max_pixels: int, field: str = "image") -> None:
    """Everything about an image that can be checked without decoding it: source, format, size, byte count."""
    source = image.WhichOneof("source")
    if source == "encoded":
        width, height = encoded_image_size(image.encoded, field)
        _check_size(width, height, max_pixels, field)
    elif source == "raw":
        raw = image.raw
        channels = _CHANNELS.get(raw.format)
        if channels is None:
            raise InvalidInput(f"{field}: raw.format must be BGR8 or GRAY8, got {_enum_name(pb.PixelFormat, raw.format)}")
        _check_size(raw.width, raw.height, max_pixels, field)
        expected = raw.width * raw.height * channels
        if len(raw.data) != expected:
            raise InvalidInput(
                f"{field}: raw frame {raw.width}x{raw.height} {pb.PixelFormat.Name(raw.format)} needs {expected} bytes, "
                f"got {len(raw.data)}"
            )
    else:
        raise InvalidInput(f"{field}: set either encoded (JPEG/PNG bytes) or raw (a RawFrame)")


def decode_image(image: pb.Image, *, max_pixels: int, field: str = "image") -> np.ndarray:
    """A gray (uint8, HxW) or BGR (uint8, HxWx3) array: all the face pipeline needs."""
    check_image(image, max_pixels=max_pixels, field=field)
    if image.WhichOneof("source") == "raw":
        raw = image.raw
        shape = (raw.height, raw.width) if _CHANNELS[raw.format] == 1 else (raw.height, raw.width, 3)
        return np.frombuffer(raw.data, dtype=np.uint8).reshape(shape)
    # In colour: the face detector finds smaller faces in colour than in gray (features/faces/blazeface.py).
    array = cv2.imdecode(np.frombuffer(image.encoded, dtype=np.uint8), cv2.IMREAD_COLOR)
    if array is None:
        raise InvalidInput(f"{field}: could not decode {len(image.encoded)} bytes as an image; send JPEG or PNG bytes")
    # EXIF orientation may have turned it; the header's size still bounds it.
    _check_size(array.shape[1], array.shape[0], max_pixels, field)
    return array


def _check_size(width: int, height: int, max_pixels: int, field: str) -> None:
    if min(width, height) < MIN_IMAGE_SIDE:
        raise InvalidInput(f"{field}: {width}x{height} is too small; each side must be at least {MIN_IMAGE_SIDE} pixels")
    if width * height > max_pixels:
        raise InvalidInput(f"{field}: {width}x{height} has more than the {max_pixels} pixels accepted")


def encoded_image_size(data: bytes, field: str = "image") -> tuple[int, int]:
    """(width, height) from a PNG or JPEG header, without decoding the pixels."""
    if not data:
        raise InvalidInput(f"{field}: encoded image is empty; send JPEG or PNG bytes")
    if data.startswith(_PNG_SIGNATURE):
        # The IHDR chunk must come first: length, type, then width and height as big-endian uint32.
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise InvalidInput(f"{field}: PNG without an IHDR header; send a complete PNG file")
        return struct.unpack(">II", data[16:24])
    if data.startswith(_JPEG_START):
        return _jpeg_size(data, field)
    raise InvalidInput(f"{field}: {len(data)} bytes are neither JPEG nor PNG; send JPEG or PNG bytes")


def _jpeg_size(data: bytes, field: str) -> tuple[int, int]:
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            break
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data, before any frame header
            break
        (length,) = struct.unpack(">H", data[position + 2:position + 4])
        if marker in _JPEG_FRAME_MARKERS:
            if length < 7 or position + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[position + 5:position + 9])
            return width, height
        if length < 2:
            break
        position += 2 + length
    raise InvalidInput(f"{field}: JPEG without a readable frame header (truncated or corrupt); send a complete JPEG file")
