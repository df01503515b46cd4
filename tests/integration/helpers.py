"""Small helpers shared by the integration tests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import cv2
import pytest

from protos.emotion.v1 import emotion_pb2 as pb
from scripts.local_stack import LocalStack
from tests.media import face_photo, pcm16, speech

WAIT_S = 180.0  # bound on waiting for something that should happen (the machine may be busy); never asserted


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S, interval_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def jpeg(image) -> bytes:
    return cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def fuse_request(seconds: float = 2.0) -> pb.FuseRequest:
    """Speech and a face: both modalities answer when both model servers are up."""
    return pb.FuseRequest(
        audio=pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=16000, data=pcm16(speech(seconds))),
        image=pb.Image(encoded=jpeg(face_photo())),
    )


def log_text(stack: LocalStack, name: str = "fusion") -> str:
    path = Path(stack.log_dir) / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""
