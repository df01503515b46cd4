"""Reading a FuseResponse the way every view needs it: scores in label order and statuses in words."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS


def probabilities(scores: Iterable[pb.EmotionScore]) -> np.ndarray | None:
    """Scores matched by label name into LABELS order; None when the service sent none."""
    by_label = {score.label: score.probability for score in scores}
    if not by_label:
        return None
    return np.array([by_label.get(label, 0.0) for label in LABELS], dtype=np.float32)


def status_name(status: int) -> str:
    return pb.ModalityStatus.Name(status)


_COMMON_STATUS_TEXT = {
    pb.MODEL_UNAVAILABLE: "model unavailable",
    pb.DISABLED: "off",
    pb.MODALITY_STATUS_UNSPECIFIED: "waiting",
}


def voice_status_text(result: pb.FuseResponse | None) -> str:
    if result is None:
        return "waiting"
    return {pb.USED: "speech", pb.NO_SPEECH: "no speech", pb.ABSENT: "no audio", **_COMMON_STATUS_TEXT}[result.audio.status]


def face_status_text(result: pb.FuseResponse | None) -> str:
    if result is None:
        return "waiting"
    if result.video.status == pb.USED:
        return "1 face" if len(result.faces) == 1 else f"{len(result.faces)} faces"
    return {pb.NO_FACE: "no face", pb.ABSENT: "no frame", **_COMMON_STATUS_TEXT}[result.video.status]


def method_name(result: pb.FuseResponse) -> str:
    """The fusion method in words ('weighted sum'); empty from a service too old to say."""
    return pb.FusionMethod.Name(result.fusion_method).lower().replace("_", " ") if result.fusion_method else ""


def weights_text(result: pb.FuseResponse) -> str:
    """Which modalities the fused answer rests on, e.g. 'face 70% + voice 30%'."""
    parts = [f"{name} {weight:.0%}" for name, weight in (("face", result.video_weight), ("voice", result.audio_weight)) if weight > 0]
    return " + ".join(parts)


def fusion_text(result: pb.FuseResponse) -> str:
    """How the fused answer was made, e.g. 'weighted sum: face 70% + voice 30%'."""
    method = method_name(result)
    return f"{method}: {weights_text(result)}" if method else weights_text(result)


_UNCERTAINTY_TEXT = {pb.LOW_CONFIDENCE: "low confidence", pb.MODALITIES_DISAGREE: "face and voice disagree"}


def uncertainty_text(result: pb.FuseResponse) -> str:
    """Why the fused answer is only a guess, in words; empty when it is not one."""
    return _UNCERTAINTY_TEXT.get(result.uncertainty_reason, "uncertain") if result.uncertain else ""
