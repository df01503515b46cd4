"""The development model server over real gRPC: answers, encodings and errors as TF Serving gives them.

One server for the module, configured by a ModelServerConfig file with two models (audio, video).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
import tensorflow as tf
from dev_server_models import INPUTS, WARMUP_BATCH_SIZES, run_directly, sample_input, write_model
from dev_server_process import DevModelServer
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    inference_pb2,
    model_management_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    regression_pb2,
)

from protos.emotion.v1.constants import LABELS

pytestmark = pytest.mark.ml

AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("model_repository")
    for name in INPUTS:
        write_model(root / name, name, 1)
    return root


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "models.config"
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "{repository / name}" model_platform: "tensorflow" }}\n'
        for name in INPUTS
    )
    config.write_text(f"model_config_list {{\n{entries}}}\n")
    with DevModelServer([f"--model_config_file={config}"], tmp_path_factory.mktemp("logs") / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.target) as opened:
        yield opened


@pytest.fixture(scope="module")
def predictions(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def predict_request(name: str = "audio", batch: np.ndarray | None = None, **model_spec) -> predict_pb2.PredictRequest:
    input_key, _ = INPUTS[name]
    batch = sample_input(name, 2) if batch is None else batch
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name, **model_spec))
    request.inputs[input_key].CopyFrom(tf.make_tensor_proto(batch))
    return request


def rpc_error(method, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        method(request, timeout=30)
    return raised.value


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_predict_answers_what_the_model_computes(predictions, repository, name):
    batch = sample_input(name, 3, seed=7)
    response = predictions.Predict(predict_request(name, batch), timeout=30)

    expected = run_directly(repository / name / "1", name, batch)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected["probabilities"], rtol=1e-6)
    assert tf.make_ndarray(response.outputs["labels"]).tolist() == [[label.encode() for label in LABELS]] * 3
    assert response.model_spec == model_pb2.ModelSpec(
        name=name, version={"value": 1}, signature_name="serving_default"
    )


def test_outputs_come_in_typed_fields_as_tf_serving_encodes_them(predictions):
    outputs = predictions.Predict(predict_request(), timeout=30).outputs

    probabilities, labels = outputs["probabilities"], outputs["labels"]
    assert probabilities.dtype == types_pb2.DT_FLOAT and not probabilities.tensor_content
    assert len(probabilities.float_val) == 2 * 7
    assert [d.size for d in probabilities.tensor_shape.dim] == [2, 7]
    assert labels.dtype == types_pb2.DT_STRING and len(labels.string_val) == 2 * 7


def test_inputs_may_come_in_typed_fields_too(predictions):
    batch = sample_input("audio", 1)
    request = predict_request("audio", batch)
    compact = request.inputs["features"]
    compact.ClearField("tensor_content")
    compact.float_val.extend(batch.reshape(-1).tolist())

    typed = predictions.Predict(request, timeout=30)
    packed = predictions.Predict(predict_request("audio", batch), timeout=30)
    assert typed.outputs["probabilities"] == packed.outputs["probabilities"]


def test_output_filter_returns_only_the_outputs_named(predictions):
    request = predict_request()
    request.output_filter.append("probabilities")
    assert set(predictions.Predict(request, timeout=30).outputs) == {"probabilities"}


def test_version_and_signature_can_be_named(predictions):
    named = predictions.Predict(predict_request(version={"value": 1}, signature_name="serving_default"), timeout=30)
    latest = predictions.Predict(predict_request(), timeout=30)
    assert named.model_spec.version.value == 1
    assert named.outputs["probabilities"] == latest.outputs["probabilities"]


def test_metadata_returns_the_saved_signatures(predictions, repository):
    request = get_model_metadata_pb2.GetModelMetadataRequest(
        model_spec=model_pb2.ModelSpec(name="audio"), metadata_field=["signature_def"]
    )
    response = predictions.GetModelMetadata(request, timeout=30)

    assert response.model_spec == model_pb2.ModelSpec(name="audio", version={"value": 1})
    assert response.metadata["signature_def"].type_url == "type.googleapis.com/tensorflow.serving.SignatureDefMap"
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    saved = saved_model_pb2.SavedModel.FromString((repository / "audio" / "1" / "saved_model.pb").read_bytes())
    assert dict(signatures.signature_def) == dict(saved.meta_graphs[0].signature_def)
    serving = signatures.signature_def["serving_default"]
    assert serving.method_name == "tensorflow/serving/predict"
    shapes = {
        alias: (info.dtype, [d.size for d in info.tensor_shape.dim])
        for alias, info in [*serving.inputs.items(), *serving.outputs.items()]
    }
    assert shapes == {
        "features": (types_pb2.DT_FLOAT, [-1, 126, 98]),
        "probabilities": (types_pb2.DT_FLOAT, [-1, 7]),
        "labels": (types_pb2.DT_STRING, [-1, 7]),
    }


@pytest.mark.parametrize("version", [None, 1])
def test_status_reports_the_version_available(models, version):
    spec = model_pb2.ModelSpec(name="video", version=None if version is None else {"value": version})
    response = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=spec), timeout=30)

    [status] = response.model_version_status
    assert (status.version, status.state) == (1, AVAILABLE)
    assert status.HasField("status") and status.status.error_code == 0 and status.status.error_message == ""


def test_concurrent_predictions_each_get_their_own_answer(predictions, repository):
    batches = [sample_input("audio", 1 + i % 3, seed=i) for i in range(24)]
    model = tf.saved_model.load(str(repository / "audio" / "1"))
    expected = [
        model.signatures["serving_default"](features=tf.constant(batch))["probabilities"].numpy() for batch in batches
    ]

    def predict(batch):
        response = predictions.Predict(predict_request("audio", batch), timeout=30)
        return tf.make_ndarray(response.outputs["probabilities"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(predict, batches))
    for answer, reference in zip(answers, expected):
        np.testing.assert_allclose(answer, reference, rtol=1e-6)


def test_log_says_which_model_and_version_loaded_after_its_warmup(server, repository):
    log = server.log()
    for name in INPUTS:
        warmup = repository / name / "1" / "assets.extra" / "tf_serving_warmup_requests"
        replayed = (
            f"Finished reading warmup data for model at {warmup}. "
            f"Number of warmup records read: {len(WARMUP_BATCH_SIZES)}."
        )
        loaded = f"Successfully loaded servable version {{name: {name} version: 1}}"
        assert replayed in log and loaded in log
        assert log.index(replayed) < log.index(loaded)
    assert f"Running gRPC ModelServer at 0.0.0.0:{server.port}" in log


def _with_inputs(**inputs) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="audio"))
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
    return request


def _with_output_filter(*aliases) -> predict_pb2.PredictRequest:
    request = predict_request()
    request.output_filter.extend(aliases)
    return request


def _truncated_input() -> predict_pb2.PredictRequest:
    request = predict_request()
    request.inputs["features"].tensor_content = request.inputs["features"].tensor_content[:-4]
    return request


def _metadata(fields=("signature_def",), **model_spec) -> get_model_metadata_pb2.GetModelMetadataRequest:
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=list(fields))
    if model_spec:
        request.model_spec.CopyFrom(model_pb2.ModelSpec(**model_spec))
    return request


def _status(**model_spec) -> get_model_status_pb2.GetModelStatusRequest:
    request = get_model_status_pb2.GetModelStatusRequest()
    if model_spec:
        request.model_spec.CopyFrom(model_pb2.ModelSpec(**model_spec))
    return request


FEATURES = sample_input("audio", 1)
INVALID, NOT_FOUND, PRECONDITION = (
    grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION
)

# (service, method, request, code, TF Serving's message)
ERRORS = {
    "unknown model": (
        "Predict", predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name="nope")),
        NOT_FOUND, "Servable not found for request: Latest(nope)",
    ),
    "unknown version": (
        "Predict", predict_request(version={"value": 7}), NOT_FOUND,
        "Servable not found for request: Specific(audio, 7)",
    ),
    "version label": (
        "Predict", predict_request(version_label="stable"), INVALID, "Unrecognized servable version label: stable",
    ),
    "no model spec": ("Predict", predict_pb2.PredictRequest(), INVALID, "Missing ModelSpec"),
    "no model name": (
        "Predict", predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec()), INVALID,
        "ModelSpec has no name specified.",
    ),
    "unknown signature": (
        "Predict", predict_request(signature_name="nope"), PRECONDITION, 'Serving signature key "nope" not found.',
    ),
    "missing input": (
        "Predict", _with_inputs(), INVALID,
        "input size does not match signature: 0!=1 len({}) != len({features}). Sent extra: {}. "
        "Missing but required: {features}.",
    ),
    "extra input": (
        "Predict", _with_inputs(features=FEATURES, extra=FEATURES), INVALID,
        "input size does not match signature: 2!=1 len({extra,features}) != len({features}). Sent extra: {extra}. "
        "Missing but required: {}.",
    ),
    "unknown input alias": (
        "Predict", _with_inputs(feature=FEATURES), INVALID,
        "input tensor alias not found in signature: feature. Inputs expected to be in the set {features}.",
    ),
    "unparsable input": ("Predict", _truncated_input(), INVALID, "tensor parsing error: features"),
    "wrong dtype": (
        "Predict", _with_inputs(features=FEATURES.astype(np.float64)), INVALID,
        "Expects arg[0] to be float but double is provided",
    ),
    "unknown output alias": (
        "Predict", _with_output_filter("nope"), INVALID,
        "output tensor alias not found in signature: nope Outputs expected to be in the set {labels,probabilities}.",
    ),
    "duplicate output alias": (
        "Predict", _with_output_filter("labels", "labels"), INVALID, "duplicate output tensor alias: labels",
    ),
    "metadata without model spec": ("GetModelMetadata", _metadata(), INVALID, "Missing ModelSpec"),
    "metadata without field": (
        "GetModelMetadata", _metadata((), name="audio"), INVALID,
        "GetModelMetadataRequest must specify at least one metadata_field",
    ),
    "unsupported metadata field": (
        "GetModelMetadata", _metadata(("signature_def", "inputs"), name="audio"), INVALID,
        "Metadata field %s is not supportedinputs",
    ),
    "metadata of unknown model": (
        "GetModelMetadata", _metadata(name="nope"), NOT_FOUND, "Servable not found for request: Latest(nope)",
    ),
    "status without model spec": ("GetModelStatus", _status(), INVALID, "Missing ModelSpec"),
    "status of unknown model": (
        "GetModelStatus", _status(name="nope"), NOT_FOUND, "Could not find any versions of model nope",
    ),
    "status of unknown version": (
        "GetModelStatus", _status(name="audio", version={"value": 9}), NOT_FOUND,
        "Could not find version 9 of model audio",
    ),
}


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_have_tf_servings_code_and_message(predictions, models, case):
    method_name, request, code, message = ERRORS[case]
    service = models if method_name == "GetModelStatus" else predictions

    error = rpc_error(getattr(service, method_name), request)
    assert (error.code(), error.details()) == (code, message)


def test_an_input_shape_the_graph_cannot_take_is_an_invalid_argument(predictions):
    # TF Serving does not check shapes before running; the ops refuse them, with the ops' message.
    error = rpc_error(predictions.Predict, _with_inputs(features=np.zeros((1, 10, 98), np.float32)))
    assert error.code() == INVALID
    assert "Incompatible shapes: [1,10,98] vs. [126,98]" in error.details()


@pytest.mark.parametrize(
    "method_name, request_message",
    [
        ("Classify", classification_pb2.ClassificationRequest()),
        ("Regress", regression_pb2.RegressionRequest()),
        ("MultiInference", inference_pb2.MultiInferenceRequest()),
        ("HandleReloadConfigRequest", model_management_pb2.ReloadConfigRequest()),
    ],
)
def test_rpcs_beyond_predict_metadata_and_status_are_unimplemented(predictions, models, method_name, request_message):
    service = models if method_name == "HandleReloadConfigRequest" else predictions
    error = rpc_error(getattr(service, method_name), request_message)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert method_name in error.details()
