"""Which fusion an answer gets: the API's FusionMethod values, by name, mapped to fusion.py's functions.

Every method has one signature, (scores by modality, weights by modality) -> Fused, so choosing one is a
look-up; a method is offered by being in fusion.FUSION_FUNCTIONS under its FusionMethod name in lower case.
"""

from __future__ import annotations

from collections.abc import Mapping

from fusion_service.fusion import FUSION_FUNCTIONS, MODALITIES, learned_parameters
from protos.emotion.v1 import emotion_pb2 as pb

# Names are pb.FusionMethod's, in lower case (they are what --fusion-method takes).
METHODS = FUSION_FUNCTIONS
# The service's default until --fusion-method says otherwise: chosen on paired validation data by the rule in
# training/reports/fusion/ (the largest worst-case gain among the methods whose fused ECE stays <= 0.06).
DEFAULT_METHOD = "learned_logistic"
# What a request that sets its own weights and no method gets: the fixed weighted sum it always got.
EXPLICIT_WEIGHTS_METHOD = "weighted_sum"
LEARNED_METHOD = "learned_logistic"
# What the learned fusion gives way to while the models answering are not the versions it was fitted for (its
# coefficients weigh those models' answers): of the methods that need no fitting, the one that gained over the
# better single modality on every validation pairing (training/reports/fusion/).
UNFITTED_FALLBACK = "product_of_experts"


def applicable_method(name: str, versions: Mapping[str, int]) -> str:
    """`name`, unless it is the learned fusion and `versions` (the model version that answered, by modality) are
    not the ones it was fitted for: then UNFITTED_FALLBACK. Refit it for new models with training.fusion_eval."""
    if name != LEARNED_METHOD:
        return name
    fitted = learned_parameters().fitted_for
    if all(versions.get(modality) == fitted.get(f"{modality}_model_version") for modality in MODALITIES):
        return name
    return UNFITTED_FALLBACK


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
