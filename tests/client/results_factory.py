"""FuseResponse messages built by hand, for the view tests."""

from __future__ import annotations

import numpy as np

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS

VOICE = np.array([0.10, 0.05, 0.10, 0.30, 0.30, 0.10, 0.05])
FACE = np.array([0.05, 0.02, 0.03, 0.70, 0.10, 0.05, 0.05])
FUSED = 0.3 * VOICE + 0.7 * FACE


def scores(values) -> list[pb.EmotionScore]:
    return [pb.EmotionScore(label=label, probability=float(p)) for label, p in zip(LABELS, values)]


def face(x: int, y: int, side: int, values) -> pb.Face:
    return pb.Face(box=pb.BoundingBox(x=x, y=y, width=side, height=side), scores=scores(values),
                   top_emotion=LABELS[int(np.argmax(values))])


def full_result(faces: list[pb.Face] | None = None) -> pb.FuseResponse:
    """Both modalities used: voice VOICE, face FACE, fused FUSED (happy on top)."""
    return pb.FuseResponse(
        audio=pb.ModalityResult(status=pb.USED, scores=scores(VOICE)),
        video=pb.ModalityResult(status=pb.USED, scores=scores(FACE)),
        faces=faces if faces is not None else [face(100, 80, 120, FACE)],
        primary_face=0,
        fused=scores(FUSED),
        top_emotion="happy",
        top_probability=float(FUSED.max()),
        audio_weight=0.3,
        video_weight=0.7,
    )


def face_only_result() -> pb.FuseResponse:
    """A face, but no speech in the audio window."""
    return pb.FuseResponse(
        audio=pb.ModalityResult(status=pb.NO_SPEECH, reason="no speech found"),
        video=pb.ModalityResult(status=pb.USED, scores=scores(FACE)),
        faces=[face(100, 80, 120, FACE)],
        primary_face=0,
        fused=scores(FACE),
        top_emotion="happy",
        top_probability=float(FACE.max()),
        video_weight=1.0,
    )


def uncertain_result(reason: int = pb.MODALITIES_DISAGREE) -> pb.FuseResponse:
    """full_result from a service that says how it fused, and that the answer is only a guess."""
    result = full_result()
    result.fusion_method = pb.WEIGHTED_SUM
    result.uncertain, result.uncertainty_reason, result.uncertain_below = True, reason, 0.4
    return result
