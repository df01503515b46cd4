"""TF Serving's messages and services as the development model server speaks them: the vendored definitions
(protos/tfserving, wire-compatible with the official ones), built in a descriptor pool of the server's own.

Why a pool of its own: importing TensorFlow registers the official definitions of the same names
(tensorflow.TensorProto, ...) in protobuf's default pool, where the vendored modules (protos.tfserving.*_pb2) and
the official stubs (tensorflow_serving.apis) register theirs too, and two definitions of one name cannot meet
there. The server imports TensorFlow only when a version runs on it (tf_runtime.py), maybe long after it started;
with its messages apart, that works whenever it happens, and a process that never needs TensorFlow never imports
it. Code that hands the server messages in-process (tests, benchmarks) builds them from this module; clients in
other processes may use any stubs (the tests use the official ones: they keep the server checked against them).

The pool comes from protos/tfserving/descriptors.binpb, which `make protos` (python -m protos.generate) writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

DESCRIPTORS = Path(__file__).resolve().parent.parent / "protos" / "tfserving" / "descriptors.binpb"
PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"


def _pool() -> descriptor_pool.DescriptorPool:
    try:
        content = DESCRIPTORS.read_bytes()
    except FileNotFoundError:
        raise RuntimeError(f"{DESCRIPTORS} is missing: run `make protos` (python -m protos.generate)") from None
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(content).file:
        pool.Add(file)
    return pool


POOL = _pool()


def _message(name: str) -> type:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(name))


DataType = EnumTypeWrapper(POOL.FindEnumTypeByName("tensorflow.DataType"))
TensorProto = _message("tensorflow.TensorProto")
SignatureDef = _message("tensorflow.SignatureDef")
SavedModel = _message("tensorflow.SavedModel")
ModelSpec = _message("tensorflow.serving.ModelSpec")
PredictRequest = _message("tensorflow.serving.PredictRequest")
PredictResponse = _message("tensorflow.serving.PredictResponse")
PredictionLog = _message("tensorflow.serving.PredictionLog")
PredictLog = _message("tensorflow.serving.PredictLog")
GetModelMetadataRequest = _message("tensorflow.serving.GetModelMetadataRequest")
GetModelMetadataResponse = _message("tensorflow.serving.GetModelMetadataResponse")
SignatureDefMap = _message("tensorflow.serving.SignatureDefMap")
GetModelStatusRequest = _message("tensorflow.serving.GetModelStatusRequest")
GetModelStatusResponse = _message("tensorflow.serving.GetModelStatusResponse")
ModelVersionStatus = _message("tensorflow.serving.ModelVersionStatus")
ModelServerConfig = _message("tensorflow.serving.ModelServerConfig")
ModelConfig = _message("tensorflow.serving.ModelConfig")


def service_handler(
    service: str, methods: dict[str, Callable], unimplemented: Callable[[str], Callable]
) -> grpc.GenericRpcHandler:
    """The unary methods of `service`: those of `methods` with their messages (de)serialised, and any other
    method the service declares in TF Serving's API answered by `unimplemented(method name)` (given raw bytes:
    the vendored protos declare only the messages the server reads)."""
    declared = POOL.FindServiceByName(service).methods_by_name
    handlers = {}
    for name, method in methods.items():
        descriptor = declared[name]
        handlers[name] = grpc.unary_unary_rpc_method_handler(
            method,
            request_deserializer=message_factory.GetMessageClass(descriptor.input_type).FromString,
            response_serializer=message_factory.GetMessageClass(descriptor.output_type).SerializeToString,
        )
    for name in _UNIMPLEMENTED_METHODS.get(service, ()):
        handlers[name] = grpc.unary_unary_rpc_method_handler(unimplemented(name))
    return grpc.method_handlers_generic_handler(service, handlers)


# TF Serving's methods beyond those the vendored protos declare, so that a call to one is answered
# UNIMPLEMENTED by name, as before, rather than gRPC's bare "Method not found!".
_UNIMPLEMENTED_METHODS = {
    PREDICTION_SERVICE: ("Classify", "Regress", "MultiInference"),
    MODEL_SERVICE: ("HandleReloadConfigRequest",),
}
