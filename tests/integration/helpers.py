"""Small helpers shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ
from scripts.local_stack import LocalStack
from testkit.media import face_photo, jpeg, pcm16, speech


def fuse_request(seconds: float = 2.0) -> pb.FuseRequest:
    """Speech and a face: both modalities answer when both model servers are up."""
    return pb.FuseRequest(
        audio=pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, data=pcm16(speech(seconds))),
        image=pb.Image(encoded=jpeg(face_photo())),
    )


def log_text(stack: LocalStack, name: str = "fusion") -> str:
    path = Path(stack.log_dir) / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""
