"""numpy <-> tensorflow.TensorProto without TensorFlow, read and written as TensorFlow does.

Clients send arrays as tensor_content (as tf.make_tensor_proto does); TF Serving answers a Predict with values in
the typed *_val fields (Tensor::AsProtoField); a reader takes either (Tensor::FromProto), including the compact
form whose last value repeats to fill the shape. Strings are bytes, as TensorFlow holds them. Shared by the
fusion service (a client) and the development model server (the other end).

The functions take and fill TensorProto messages of any descriptor pool, and import none of the generated
modules: the development model server keeps its messages in a pool of its own (model_server/wire.py).
"""

from __future__ import annotations

import numpy as np

# DataType numbers (types.proto) -> (numpy dtype, the typed field holding its values); half_val holds float16
# bit patterns. Complex, quantised and bfloat16 tensors, which none of our models takes, are not supported.
DT_STRING = 7
DT_HALF = 19
_BY_ENUM: dict[int, tuple[np.dtype, str]] = {
    1: (np.dtype(np.float32), "float_val"),  # DT_FLOAT
    2: (np.dtype(np.float64), "double_val"),  # DT_DOUBLE
    DT_HALF: (np.dtype(np.float16), "half_val"),
    6: (np.dtype(np.int8), "int_val"),  # DT_INT8
    5: (np.dtype(np.int16), "int_val"),  # DT_INT16
    3: (np.dtype(np.int32), "int_val"),  # DT_INT32
    9: (np.dtype(np.int64), "int64_val"),  # DT_INT64
    4: (np.dtype(np.uint8), "int_val"),  # DT_UINT8
    17: (np.dtype(np.uint16), "int_val"),  # DT_UINT16
    22: (np.dtype(np.uint32), "uint32_val"),  # DT_UINT32
    23: (np.dtype(np.uint64), "uint64_val"),  # DT_UINT64
    10: (np.dtype(np.bool_), "bool_val"),  # DT_BOOL
}
_BY_DTYPE = {dtype: enum for enum, (dtype, _) in _BY_ENUM.items()}
_BITS_OF_HALF = np.dtype(np.uint16)


def fill_tensor_proto(proto, array: np.ndarray, *, typed: bool) -> None:
    """Write `array` into the empty TensorProto `proto`: as tf.make_tensor_proto does (typed=False: numbers as
    little-endian tensor_content), or as TF Serving answers a Predict (typed=True: Tensor::AsProtoField, values in
    the typed *_val field). Strings go in string_val either way. TypeError for a dtype TensorFlow has no name for."""
    array = np.asarray(array)
    for side in array.shape:
        proto.tensor_shape.dim.add(size=int(side))
    if array.dtype.kind in "USO":
        proto.dtype = DT_STRING
        proto.string_val.extend(
            value.encode() if isinstance(value, str) else bytes(value) for value in array.reshape(-1).tolist()
        )
        return
    proto.dtype = _dtype_enum(array.dtype)
    if not typed:
        proto.tensor_content = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
        return
    values = array.reshape(-1)
    if proto.dtype == DT_HALF:
        values = values.view(_BITS_OF_HALF)
    getattr(proto, _BY_ENUM[proto.dtype][1]).extend(values.tolist())


def to_ndarray(proto, *, decode_strings: bool = False) -> np.ndarray:
    """Unpack a TensorProto from tensor_content or the typed *_val fields; strings as bytes (str when
    `decode_strings`, UTF-8). TypeError for a dtype numpy cannot hold, ValueError for a malformed tensor."""
    shape = tuple(dim.size for dim in proto.tensor_shape.dim)
    if any(side < 0 for side in shape):
        raise ValueError(f"tensor shape {list(shape)} has a negative dimension")
    count = int(np.prod(shape, dtype=np.int64))
    if proto.dtype == DT_STRING:
        values = list(proto.string_val)
        if decode_strings:
            values = [value.decode("utf-8", "replace") for value in values]
        return _fill(np.array(values, dtype=object), count, "" if decode_strings else b"").reshape(shape)
    if proto.dtype not in _BY_ENUM:
        name = proto.DESCRIPTOR.fields_by_name["dtype"].enum_type.values_by_number.get(proto.dtype)
        raise TypeError(f"unsupported tensor dtype {name.name if name else proto.dtype}")
    dtype, field = _BY_ENUM[proto.dtype]
    if proto.tensor_content:
        content = proto.tensor_content
        if len(content) != count * dtype.itemsize:
            raise ValueError(f"tensor_content holds {len(content)} bytes; shape {list(shape)} of {dtype} needs "
                             f"{count * dtype.itemsize}")
        return np.frombuffer(content, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    typed = getattr(proto, field)
    if proto.dtype == DT_HALF:
        values = np.asarray(typed, dtype=_BITS_OF_HALF).view(dtype)
    else:
        values = np.asarray(typed, dtype=dtype)
    return _fill(values, count, 0).reshape(shape)


def _dtype_enum(dtype: np.dtype) -> int:
    enum = _BY_DTYPE.get(dtype.newbyteorder("="))
    if enum is None:
        supported = sorted(str(known) for known in _BY_DTYPE)
        raise TypeError(f"unsupported dtype {dtype}; use one of {supported} or strings")
    return enum


def _fill(values: np.ndarray, count: int, empty) -> np.ndarray:
    """TensorFlow's compact encoding: the last value repeats to fill the shape; no values at all mean zeros."""
    if values.size == count:
        return values
    if values.size == 0:
        return np.full(count, empty, dtype=values.dtype)
    if values.size < count:
        return np.concatenate([values, np.repeat(values[-1:], count - values.size)])
    raise ValueError(f"tensor holds {values.size} values, more than its shape's {count}")
