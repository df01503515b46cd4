"""TensorProto <-> numpy, encoded the way TF Serving's Predict encodes them."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, types_pb2

# Tensor::AsProtoField, which TF Serving uses for Predict responses: values in the typed field.
_VALUE_FIELD = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
}


def data_type_string(dtype: int) -> str:
    """TensorFlow's DataTypeString ("float", "double", "string"...), as in its error messages."""
    return types_pb2.DataType.Name(dtype).removeprefix("DT_").lower()


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Decode like Tensor::FromProto; ValueError when the proto is not a valid tensor."""
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as error:
        raise ValueError(str(error)) from None


def to_proto_field(value: np.ndarray) -> tensor_pb2.TensorProto:
    """Encode an output tensor (as Session.run returns it) the way TF Serving answers a Predict (typed
    *_val fields)."""
    dtype = tf.as_dtype(value.dtype).as_datatype_enum
    field = _VALUE_FIELD.get(dtype)
    if field is None:
        # Rare dtypes (half, complex...) go as tensor_content, which every TensorProto reader accepts.
        return tf.make_tensor_proto(value)
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tf.TensorShape(value.shape).as_proto())
    getattr(proto, field).extend(value.reshape(-1).tolist())
    return proto
