"""The three modes (voice and face, voice only, face only) and what each asks of the service."""

from __future__ import annotations

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ

MODES = ("both", "audio", "video")


def uses_audio(mode: str) -> bool:
    return mode in ("both", "audio")


def uses_video(mode: str) -> bool:
    return mode in ("both", "video")


def fusion_options(mode: str) -> pb.FusionOptions:
    """Both: no list (all modalities); otherwise the one used, so the service reports the other DISABLED."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    return pb.FusionOptions(modalities=[] if mode == "both" else [pb.AUDIO if uses_audio(mode) else pb.VIDEO])


def stream_config(mode: str, result_rate_hz: float) -> pb.StreamConfig:
    return pb.StreamConfig(
        audio_encoding=pb.PCM_S16LE, audio_sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, result_rate_hz=result_rate_hz,
        options=fusion_options(mode),
    )
