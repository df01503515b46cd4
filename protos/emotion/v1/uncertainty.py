"""When an answer is uncertain, and why: the rule the service applies to every fused answer, shared with
clients that derive answers of their own from its results (a smoothed timeline), so both judge alike.

Beside the generated stubs for the same reason as smoothing.py: it defines API fields (FuseResponse.uncertain,
uncertainty_reason), and both the service and the capture client may import it.
"""

from __future__ import annotations

import numpy as np

from protos.emotion.v1 import emotion_pb2 as pb

# Below this fused confidence an answer is called uncertain. A first choice, from the models as they are: with
# seven labels chance is 0.14, and below 0.4 a calibrated answer is wrong at least three times in five.
DEFAULT_UNCERTAIN_BELOW = 0.4
# A modality at least this confident finds its emotion likelier than all the others together; two of them
# naming different emotions contradict each other.
DEFAULT_CONFIDENT_ABOVE = 0.5


def confidence(probabilities: np.ndarray | None) -> float:
    """The top probability (see emotion.proto for why this and not entropy); 0 for no answer."""
    return 0.0 if probabilities is None else float(np.max(probabilities))


def modalities_disagree(audio: np.ndarray | None, video: np.ndarray | None, confident_above: float) -> bool:
    """Both modalities answered, each confidently, naming different emotions."""
    if audio is None or video is None:
        return False
    both_confident = confidence(audio) >= confident_above and confidence(video) >= confident_above
    return both_confident and int(np.argmax(audio)) != int(np.argmax(video))


def uncertainty_reason(fused_confidence: float, disagree: bool, uncertain_below: float) -> int:
    """A pb.UncertaintyReason: disagreement first (it says more), then low confidence; UNSPECIFIED when sure."""
    if disagree:
        return pb.MODALITIES_DISAGREE
    if fused_confidence < uncertain_below:
        return pb.LOW_CONFIDENCE
    return pb.UNCERTAINTY_REASON_UNSPECIFIED
