"""TF Serving's gRPC services (PredictionService, ModelService) over the model manager.

Request validation order, status codes and messages follow TF Serving's prediction_service_impl.cc,
get_model_metadata_impl.cc and get_model_status_impl.cc. Messages are model_server.wire's (the vendored protos,
in the server's own descriptor pool), and handlers() registers the methods with gRPC from their descriptors.
"""

from __future__ import annotations

import functools
import logging

import grpc

from model_server import wire
from model_server.errors import ServingError
from model_server.manager import ModelManager

log = logging.getLogger(__name__)

SIGNATURE_DEF_FIELD = "signature_def"


def _answers_errors(method):
    """Turn a ServingError into the RPC's status, as TF Serving's ToGRPCStatus does."""

    @functools.wraps(method)
    def wrapper(self, request, context: grpc.ServicerContext):
        try:
            return method(self, request, context)
        except ServingError as error:
            log.debug("%s failed: %s", method.__name__, error.message)
            context.abort(error.code, error.message)

    return wrapper


def _not_implemented(method_name: str):
    def method(request: bytes, context: grpc.ServicerContext):
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{method_name} is not implemented by the development model server; use Predict, GetModelMetadata "
            "or GetModelStatus, or run TensorFlow Serving",
        )

    method.__name__ = method_name
    return method


class PredictionServicer:
    def __init__(self, manager: ModelManager):
        self._manager = manager

    @_answers_errors
    def Predict(self, request, context):
        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        return self._manager.servable(request.model_spec).predict(request)

    @_answers_errors
    def GetModelMetadata(self, request, context):
        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        if not request.metadata_field:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, "GetModelMetadataRequest must specify at least one metadata_field"
            )
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                # TF Serving formats this message with StrCat, so its "%s" stays literal: kept byte for byte.
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field %s is not supported{field}")
        servable = self._manager.servable(request.model_spec)
        signatures = wire.SignatureDefMap()
        for name, signature in servable.signature_defs.items():
            signatures.signature_def[name].CopyFrom(signature)
        response = wire.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signatures)
        return response


class ModelServicer:
    def __init__(self, manager: ModelManager):
        self._manager = manager

    @_answers_errors
    def GetModelStatus(self, request, context):
        if not request.HasField("model_spec"):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        spec = request.model_spec
        version = spec.version.value if spec.HasField("version") else None
        response = wire.GetModelStatusResponse()
        for status in self._manager.version_statuses(spec.name, version):
            entry = response.model_version_status.add(version=status.version, state=status.state)
            if status.error is None:
                entry.status.SetInParent()  # TF Serving always sets it: error_code OK, no message
            else:
                entry.status.error_code = status.error.code_number
                entry.status.error_message = status.error.message
        return response


def handlers(manager: ModelManager) -> list[grpc.GenericRpcHandler]:
    """PredictionService and ModelService over `manager`, as gRPC handlers."""
    predictions, models = PredictionServicer(manager), ModelServicer(manager)
    return [
        wire.service_handler(
            wire.PREDICTION_SERVICE,
            {"Predict": predictions.Predict, "GetModelMetadata": predictions.GetModelMetadata},
            _not_implemented,
        ),
        wire.service_handler(wire.MODEL_SERVICE, {"GetModelStatus": models.GetModelStatus}, _not_implemented),
    ]
