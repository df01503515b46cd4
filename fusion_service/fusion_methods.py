"""Which fusion an answer gets: the API's FusionMethod values, by name, mapped to fusion.py's functions.

Every method has one signature, (scores by modality, weights by modality) -> Fused, so choosing one is a
look-up; a method becomes available by being listed in METHODS.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from fusion_service.fusion import Fused, late_fusion
from protos.emotion.v1 import emotion_pb2 as pb

FusionFunction = Callable[[Mapping[str, np.ndarray | None], Mapping[str, float]], Fused]

# Names are pb.FusionMethod's, in lower case (they are what --fusion-method takes).
METHODS: dict[str, FusionFunction] = {
    "weighted_sum": late_fusion,
}
DEFAULT_METHOD = "weighted_sum"
# What a request that sets its own weights and no method gets: the fixed weighted sum it always got.
EXPLICIT_WEIGHTS_METHOD = "weighted_sum"


def method_value(name: str) -> int:
    """The pb.FusionMethod value of a method name."""
    return pb.FusionMethod.Value(name.upper())


def method_name(value: int) -> str:
    """The name of a pb.FusionMethod value the service offers; ValueError naming those it does otherwise."""
    offered = ", ".join(name.upper() for name in METHODS)
    if value not in pb.FusionMethod.values() or pb.FusionMethod.Name(value).lower() not in METHODS:
        shown = pb.FusionMethod.Name(value) if value in pb.FusionMethod.values() else str(value)
        raise ValueError(f"fusion method {shown} is not offered by this service; it offers {offered}")
    return pb.FusionMethod.Name(value).lower()
