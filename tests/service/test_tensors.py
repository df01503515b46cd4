import numpy as np
import pytest

from fusion_service.tensors import to_ndarray, to_tensor_proto
from protos.tfserving import tensor_pb2, tensor_shape_pb2, types_pb2


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])
def test_numeric_round_trip(dtype):
    array = (np.arange(24).reshape(2, 3, 4) % 3).astype(dtype)
    proto = to_tensor_proto(array)
    assert [d.size for d in proto.tensor_shape.dim] == [2, 3, 4]
    back = to_ndarray(proto)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


def test_float_tensor_is_sent_as_tensor_content_with_the_tf_dtype():
    proto = to_tensor_proto(np.ones((1, 2), dtype=np.float32))
    assert proto.dtype == types_pb2.DT_FLOAT
    assert proto.tensor_content == np.ones(2, dtype="<f4").tobytes()


def test_strings_round_trip():
    array = np.array([["angry", "happy"], ["sad", "fear"]], dtype=object)
    np.testing.assert_array_equal(to_ndarray(to_tensor_proto(array)), array)


def test_typed_value_fields_are_read_as_tf_serving_sends_them():
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=2), tensor_shape_pb2.TensorShapeProto.Dim(size=2)])
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, float_val=[0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(to_ndarray(proto), [[0.1, 0.2], [0.3, 0.4]], rtol=1e-6)


def test_compact_encoding_repeats_the_last_value():
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=3)])
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, tensor_shape=shape, int_val=[7])
    np.testing.assert_array_equal(to_ndarray(proto), [7, 7, 7])


def test_unsupported_dtype_is_refused_with_the_supported_list():
    with pytest.raises(TypeError, match="unsupported dtype"):
        to_tensor_proto(np.zeros(2, dtype=np.complex64))
