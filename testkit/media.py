"""Media made at run time: speech from espeak-ng, photographs shipped with scikit-image, their JPEG bytes."""

from __future__ import annotations

import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import cv2
import numpy as np
import soundfile

from fusion_service.features.audio import SAMPLE_RATE, resample

SENTENCE = "I cannot believe you did this again, it makes me so angry, why would anyone do that to me"


def speech(seconds: float | None = None, text: str = SENTENCE) -> np.ndarray:
    """Spoken English as float32 mono at 16 kHz, optionally cut or padded to `seconds`."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is missing: install it with `apt-get install espeak-ng` (.ci/run does)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en", "-s", "160", "-w", str(path), text], check=True)
        samples, rate = soundfile.read(path, dtype="float32")
    samples = resample(samples, rate, SAMPLE_RATE)
    if seconds is not None:
        n = int(seconds * SAMPLE_RATE)
        start = min(int(0.2 * SAMPLE_RATE), max(0, len(samples) - n))
        samples = np.pad(samples[start:start + n], (0, max(0, n - len(samples[start:start + n]))))
    return samples.astype(np.float32)


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG file bytes of a BGR or gray image, as a client sends them."""
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"OpenCV could not encode an image of shape {image.shape} as JPEG")
    return encoded.tobytes()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels: what a decompression bomb looks like up front."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))


def jpeg_header(width: int, height: int) -> bytes:
    """The same for JPEG: start of image, a JFIF segment and a baseline frame header declaring the size."""
    jfif = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + jfif + frame


def face_photo() -> np.ndarray:
    """A real photograph with one frontal face (BGR)."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def two_faces_photo() -> tuple[np.ndarray, int]:
    """The same person twice side by side, the left face larger (BGR), and the column where the right one begins."""
    head = face_photo()[20:240, 120:330]  # her head and shoulders, face about 95 px
    smaller = cv2.resize(head, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    frame = np.zeros((head.shape[0], head.shape[1] + smaller.shape[1], 3), np.uint8)
    frame[:, : head.shape[1]] = head
    frame[: smaller.shape[0], head.shape[1] :] = smaller
    return frame, head.shape[1]


def no_face_photo() -> np.ndarray:
    """A real photograph without a face (BGR)."""
    from skimage import data

    return np.ascontiguousarray(data.rocket()[:, :, ::-1])


# The astronaut's face in face_photo(): BlazeFace's box, and her head and shoulders around it.
_FACE_BOX = (176, 75, 98, 98)  # x, y, width, height
_HEAD = (slice(20, 250), slice(120, 330))  # rows, columns


def small_face_frame(face_width: int, frame_size: tuple[int, int], face_at: tuple[int, int]) -> tuple[np.ndarray, tuple]:
    """A BGR frame of frame_size (width, height) over the face-free rocket photograph, with the astronaut's head
    scaled so that her face is face_width px wide and its box's top-left corner at face_at; and that box (x, y,
    width, height). The head is cut at the frame's edges."""
    width, height = frame_size
    frame = cv2.resize(no_face_photo(), (width, height), interpolation=cv2.INTER_AREA)
    scale = face_width / _FACE_BOX[2]
    head = cv2.resize(face_photo()[_HEAD], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # Where the head's top-left corner goes for the face box to land at face_at.
    left = face_at[0] - round((_FACE_BOX[0] - _HEAD[1].start) * scale)
    top = face_at[1] - round((_FACE_BOX[1] - _HEAD[0].start) * scale)
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(width, left + head.shape[1]), min(height, top + head.shape[0])
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = head[y0 - top : y1 - top, x0 - left : x1 - left]
    side = round(_FACE_BOX[2] * scale)
    return frame, (face_at[0], face_at[1], side, side)
