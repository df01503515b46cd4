"""numpy <-> tensorflow.TensorProto without TensorFlow, as the fusion service (a client of TF Serving) uses them:
arrays sent as tensor_content, strings (the label list) read as str. The encoding is protos.tfserving.tensors'."""

from __future__ import annotations

import numpy as np

from protos.tfserving import tensor_pb2, tensors


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Pack an array as TF Serving expects it (numeric arrays as little-endian tensor_content)."""
    proto = tensor_pb2.TensorProto()
    tensors.fill_tensor_proto(proto, array, typed=False)
    return proto


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Unpack a TensorProto, whether its values come as tensor_content or typed *_val fields."""
    return tensors.to_ndarray(proto, decode_strings=True)
