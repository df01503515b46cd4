"""Print, as JSON, what the wire depends on in a set of proto definitions, for test_wire_compat.py.

    python -m tests.model_server.proto_descriptors ours        # protos/tfserving (run without TensorFlow)
    python -m tests.model_server.proto_descriptors official    # tensorflow_serving + tensorflow (in .venv-ml)

"ours" describes every message, enum and service declared in protos/tfserving. "official" reads the
names to describe as JSON on stdin (the "ours" output) and describes them from the official modules;
a name they do not define is left out. The two sides run in separate processes because both register
the same proto names.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

from google.protobuf import descriptor_pool

OFFICIAL_MODULES = [
    "tensorflow_serving.apis.get_model_metadata_pb2",
    "tensorflow_serving.apis.get_model_status_pb2",
    "tensorflow_serving.apis.model_pb2",
    "tensorflow_serving.apis.model_service_pb2",
    "tensorflow_serving.apis.predict_pb2",
    "tensorflow_serving.apis.prediction_log_pb2",
    "tensorflow_serving.apis.prediction_service_pb2",
    "tensorflow_serving.apis.status_pb2",
    "tensorflow_serving.config.file_system_storage_path_source_pb2",
    "tensorflow_serving.config.model_server_config_pb2",
    "tensorflow.core.framework.tensor_pb2",
    "tensorflow.core.framework.tensor_shape_pb2",
    "tensorflow.core.framework.types_pb2",
    "tensorflow.core.protobuf.meta_graph_pb2",
    "tensorflow.core.protobuf.saved_model_pb2",
    "tensorflow.core.protobuf.error_codes_pb2",
]


def _label(field) -> str:
    return "repeated" if field.is_repeated else "required" if field.is_required else "optional"


def describe_message(message) -> dict:
    return {
        field.name: {
            "number": field.number,
            "type": field.type,
            "label": _label(field),
            "type_name": (field.message_type or field.enum_type).full_name
            if (field.message_type or field.enum_type)
            else "",
            "oneof": field.containing_oneof.name if field.containing_oneof else "",
        }
        for field in message.fields
    }


def describe_enum(enum) -> dict:
    return {value.name: value.number for value in enum.values}


def describe_service(service) -> dict:
    return {
        method.name: {"input": method.input_type.full_name, "output": method.output_type.full_name}
        for method in service.methods
    }


def _messages_and_enums(messages, enums):
    """Every message and enum, nested ones included."""
    for message in messages:
        yield message
        yield from _messages_and_enums(message.nested_types, message.enum_types)
    yield from enums


def describe_ours() -> dict:
    root = Path(__file__).resolve().parents[2]
    modules = [
        importlib.import_module(f"protos.tfserving.{path.stem}_pb2")
        for path in sorted((root / "protos" / "tfserving").glob("*.proto"))
    ]
    description: dict = {"messages": {}, "enums": {}, "services": {}}
    for module in modules:
        file = module.DESCRIPTOR
        for item in _messages_and_enums(file.message_types_by_name.values(), file.enum_types_by_name.values()):
            if hasattr(item, "fields"):
                description["messages"][item.full_name] = describe_message(item)
            else:
                description["enums"][item.full_name] = describe_enum(item)
        for service in file.services_by_name.values():
            description["services"][service.full_name] = describe_service(service)
    return description


def describe_official(names: dict) -> dict:
    for module in OFFICIAL_MODULES:
        importlib.import_module(module)
    pool = descriptor_pool.Default()
    lookups = {
        "messages": (pool.FindMessageTypeByName, describe_message),
        "enums": (pool.FindEnumTypeByName, describe_enum),
        "services": (pool.FindServiceByName, describe_service),
    }
    description: dict = {}
    for kind, (find, describe) in lookups.items():
        description[kind] = {}
        for name in names[kind]:
            try:
                description[kind][name] = describe(find(name))
            except KeyError:
                continue
    return description


if __name__ == "__main__":
    side = sys.argv[1]
    if side == "ours":
        print(json.dumps(describe_ours()))
    elif side == "official":
        print(json.dumps(describe_official(json.load(sys.stdin))))
    else:
        sys.exit(f"usage: python -m tests.model_server.proto_descriptors ours|official (got {side!r})")
