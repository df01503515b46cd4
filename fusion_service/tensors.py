"""numpy <-> tensorflow.TensorProto without TensorFlow, for the few dtypes our models use."""

from __future__ import annotations

import numpy as np

from protos.tfserving import tensor_pb2, tensor_shape_pb2, types_pb2

_NUMERIC = {
    np.dtype(np.float32): (types_pb2.DT_FLOAT, "float_val"),
    np.dtype(np.float64): (types_pb2.DT_DOUBLE, "double_val"),
    np.dtype(np.int32): (types_pb2.DT_INT32, "int_val"),
    np.dtype(np.int64): (types_pb2.DT_INT64, "int64_val"),
    np.dtype(np.uint8): (types_pb2.DT_UINT8, "int_val"),
    np.dtype(np.bool_): (types_pb2.DT_BOOL, "bool_val"),
}
_BY_DTYPE_ENUM = {enum: (dtype, field) for dtype, (enum, field) in _NUMERIC.items()}


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """Pack an array as TF Serving expects it (numeric arrays as little-endian tensor_content)."""
    array = np.asarray(array)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(s)) for s in array.shape]
    )
    if array.dtype.kind in "USO":
        values = [v.encode() if isinstance(v, str) else bytes(v) for v in array.reshape(-1).tolist()]
        return tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, tensor_shape=shape, string_val=values)
    if array.dtype not in _NUMERIC:
        raise TypeError(f"unsupported dtype {array.dtype}; use one of {sorted(map(str, _NUMERIC))} or strings")
    dtype_enum, _ = _NUMERIC[array.dtype]
    content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return tensor_pb2.TensorProto(dtype=dtype_enum, tensor_shape=shape, tensor_content=content)


def to_ndarray(proto: tensor_pb2.TensorProto) -> np.ndarray:
    """Unpack a TensorProto, whether its values come as tensor_content or typed *_val fields."""
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    count = int(np.prod(shape)) if shape else 1
    if proto.dtype == types_pb2.DT_STRING:
        values = np.array([v.decode("utf-8", "replace") for v in proto.string_val], dtype=object)
        return _fill(values, count).reshape(shape)
    if proto.dtype not in _BY_DTYPE_ENUM:
        name = types_pb2.DataType.Name(proto.dtype) if proto.dtype in types_pb2.DataType.values() else proto.dtype
        raise TypeError(f"unsupported tensor dtype {name}")
    dtype, field = _BY_DTYPE_ENUM[proto.dtype]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = np.asarray(getattr(proto, field), dtype=dtype)
    return _fill(values, count).reshape(shape)


def _fill(values: np.ndarray, count: int) -> np.ndarray:
    # TensorProto may repeat its last value to fill the shape (TF's compact encoding).
    if values.size == count:
        return values
    if values.size == 0:
        return np.zeros(count, dtype=values.dtype) if values.dtype != object else np.full(count, "", dtype=object)
    if values.size < count:
        return np.concatenate([values, np.repeat(values[-1:], count - values.size)])
    raise ValueError(f"tensor holds {values.size} values, more than its shape's {count}")
