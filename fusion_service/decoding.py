"""Turn request fields into arrays, refusing malformed input with a message that says what is accepted."""

from __future__ import annotations

import cv2
import numpy as np

from protos.emotion.v1 import emotion_pb2 as pb

MIN_SAMPLE_RATE = 8_000
MAX_SAMPLE_RATE = 192_000
MIN_IMAGE_SIDE = 16

_SAMPLE_WIDTH = {pb.PCM_S16LE: 2, pb.PCM_F32LE: 4}


class InvalidInput(ValueError):
    """A request field is malformed. The message names the field and what is accepted."""


def check_audio_format(encoding: int, sample_rate_hz: int, field: str = "audio") -> None:
    if encoding not in _SAMPLE_WIDTH:
        raise InvalidInput(f"{field}: encoding must be PCM_S16LE or PCM_F32LE, got {pb.AudioEncoding.Name(encoding) if encoding in pb.AudioEncoding.values() else encoding}")
    if not MIN_SAMPLE_RATE <= sample_rate_hz <= MAX_SAMPLE_RATE:
        raise InvalidInput(
            f"{field}: sample_rate_hz must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE}, got {sample_rate_hz}"
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


def decode_image(image: pb.Image, *, max_pixels: int, field: str = "image") -> np.ndarray:
    """A gray (uint8, HxW) or BGR (uint8, HxWx3) array: all the face pipeline needs."""
    source = image.WhichOneof("source")
    if source == "encoded":
        array = _decode_encoded(image.encoded, field)
    elif source == "raw":
        array = _decode_raw(image.raw, max_pixels, field)
    else:
        raise InvalidInput(f"{field}: set either encoded (JPEG/PNG bytes) or raw (a RawFrame)")
    height, width = array.shape[:2]
    if min(height, width) < MIN_IMAGE_SIDE:
        raise InvalidInput(f"{field}: {width}x{height} is too small; each side must be at least {MIN_IMAGE_SIDE} pixels")
    if height * width > max_pixels:
        raise InvalidInput(f"{field}: {width}x{height} has more than the {max_pixels} pixels accepted")
    return array


def _decode_encoded(data: bytes, field: str) -> np.ndarray:
    if not data:
        raise InvalidInput(f"{field}: encoded image is empty; send JPEG or PNG bytes")
    # Faces are found in gray; decoding straight to gray skips the colour work.
    array = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if array is None:
        raise InvalidInput(f"{field}: could not decode {len(data)} bytes as an image; send JPEG or PNG bytes")
    return array


def _decode_raw(raw: pb.RawFrame, max_pixels: int, field: str) -> np.ndarray:
    channels = {pb.BGR8: 3, pb.GRAY8: 1}.get(raw.format)
    if channels is None:
        raise InvalidInput(f"{field}: raw.format must be BGR8 or GRAY8")
    if raw.width == 0 or raw.height == 0:
        raise InvalidInput(f"{field}: raw.width and raw.height must be > 0")
    if raw.width * raw.height > max_pixels:
        raise InvalidInput(f"{field}: {raw.width}x{raw.height} has more than the {max_pixels} pixels accepted")
    expected = raw.width * raw.height * channels
    if len(raw.data) != expected:
        raise InvalidInput(
            f"{field}: raw frame {raw.width}x{raw.height} {pb.PixelFormat.Name(raw.format)} needs {expected} bytes, got {len(raw.data)}"
        )
    shape = (raw.height, raw.width) if channels == 1 else (raw.height, raw.width, 3)
    return np.frombuffer(raw.data, dtype=np.uint8).reshape(shape)
