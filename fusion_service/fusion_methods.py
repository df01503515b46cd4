"""Which fusion an answer gets: the API's FusionMethod values, by name, mapped to fusion.py's functions.

Every method has one signature, (scores by modality, weights by modality) -> Fused, so choosing one is a
look-up; a method is offered by being in fusion.FUSION_FUNCTIONS under its FusionMethod name in lower case.
"""

from __future__ import annotations

from fusion_service.fusion import FUSION_FUNCTIONS
from protos.emotion.v1 import emotion_pb2 as pb

# Names are pb.FusionMethod's, in lower case (they are what --fusion-method takes).
METHODS = FUSION_FUNCTIONS
# The service's default until --fusion-method says otherwise: chosen on paired validation data by the rule in
# training/reports/fusion/ (the largest worst-case gain among the methods whose fused ECE stays <= 0.06).
DEFAULT_METHOD = "learned_logistic"
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
