"""Predict on LiteRT: a version's conversion (training.litert_export) answers as its SavedModel does, and only a
conversion of that very SavedModel is used."""

from __future__ import annotations

import json
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import keras
import numpy as np
import pytest
import tensorflow as tf
from dev_server_models import INPUTS, run_directly, sample_input, write_model
from dev_server_process import DevModelServer
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_service_pb2_grpc

from model_server.errors import ServingError
from model_server.litert_conversion import CONVERSION_DIR
from model_server.loader import TENSORFLOW_RUNTIME, load_servable
from protos.emotion.v1.constants import LABELS
from training.litert_export import (
    ConversionError, convert, convert_version, main, warmup_samples, write_conversion,
)

pytestmark = pytest.mark.ml


class _PercentileClassifier(tf.Module):
    """Like the voice model's frame statistics: a percentile over the frames by keras.ops.quantile, whose index
    arithmetic (float64, from the dynamic batch's shape) LiteRT's built-in ops cannot run."""

    def __init__(self, input_shape: tuple[int, ...]):
        super().__init__()
        rng = np.random.default_rng(3)
        self.weights = tf.Variable(rng.normal(size=(input_shape[-1], len(LABELS))).astype(np.float32))
        self.labels = tf.constant(LABELS)

    def serve(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        high = keras.ops.quantile(inputs, 0.9, axis=1)
        probabilities = tf.nn.softmax(high @ self.weights)
        return {"probabilities": probabilities, "labels": tf.tile(self.labels[tf.newaxis, :], [tf.shape(inputs)[0], 1])}


def _write_percentile_model(base_path, version: int = 1):
    """An "audio" version whose graph converts only with a batch of 1 (then run row by row)."""
    input_key, input_shape = INPUTS["audio"]
    module = _PercentileClassifier(input_shape)
    signature = tf.function(module.serve).get_concrete_function(
        tf.TensorSpec([None, *input_shape], tf.float32, name=input_key)
    )
    export_dir = base_path / str(version)
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": signature})
    return export_dir


def _request(name: str, batch: np.ndarray) -> predict_pb2.PredictRequest:
    request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name))
    request.inputs[INPUTS[name][0]].CopyFrom(tf.make_tensor_proto(batch))
    return request


def _outputs(response: predict_pb2.PredictResponse) -> dict[str, np.ndarray]:
    return {alias: tf.make_ndarray(tensor) for alias, tensor in response.outputs.items()}


def _assert_same_answers(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    np.testing.assert_allclose(actual["probabilities"], expected["probabilities"], atol=1e-5)
    assert actual["labels"].tolist() == expected["labels"].tolist()


@pytest.fixture(scope="module")
def converted_repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("model_repository")
    for name in INPUTS:
        convert_version(write_model(root / name, name, 1))
    return root


@pytest.fixture(scope="module")
def litert_server(converted_repository, tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "models.config"
    entries = "".join(
        f'  config {{ name: "{name}" base_path: "{converted_repository / name}" model_platform: "tensorflow" }}\n'
        for name in INPUTS
    )
    config.write_text(f"model_config_list {{\n{entries}}}\n")
    with DevModelServer([f"--model_config_file={config}"], tmp_path_factory.mktemp("logs") / "server.log") as running:
        yield running


@pytest.mark.parametrize("name", sorted(INPUTS))
@pytest.mark.parametrize("rows", [1, 3])
def test_a_converted_model_answers_predict_through_the_server_as_tensorflow_does(
    litert_server, converted_repository, name, rows
):
    batch = sample_input(name, rows, seed=11)
    with grpc.insecure_channel(litert_server.target) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(_request(name, batch), timeout=30)

    _assert_same_answers(_outputs(response), run_directly(converted_repository / name / "1", name, batch))
    assert response.model_spec.version.value == 1


def _imports_tensorflow(server: DevModelServer) -> bool:
    """Whether TensorFlow's native library is loaded in the server's process."""
    return "_pywrap_tensorflow_internal" in Path(f"/proc/{server.process.pid}/maps").read_text()


def test_the_log_says_which_runtime_each_version_uses(litert_server, converted_repository, tmp_path):
    for name in INPUTS:
        assert f"Predict of servable {{name: {name} version: 1}} runs on LiteRT" in litert_server.log()

    flags = ["--model_name=video", f"--model_base_path={converted_repository / 'video'}", "--predict_runtime=tensorflow"]
    with DevModelServer(flags, tmp_path / "server.log") as forced:
        assert _imports_tensorflow(forced)
    assert "Predict of servable {name: video version: 1} runs on TensorFlow" in forced.log()


def test_a_server_whose_versions_all_run_on_litert_does_not_import_tensorflow(litert_server):
    with grpc.insecure_channel(litert_server.target) as channel:
        prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            _request("video", sample_input("video", 1)), timeout=30
        )
    assert not _imports_tensorflow(litert_server)


def test_a_graph_that_converts_only_with_a_batch_of_one_answers_batches_row_by_row(tmp_path):
    export_dir = _write_percentile_model(tmp_path / "audio")
    batch = sample_input("audio", 3, seed=5)
    model_path = convert_version(export_dir, samples=[{"features": batch[:1]}, {"features": batch}])
    manifest = json.loads((model_path.parent / "manifest.json").read_text())
    servable = load_servable("audio", 1, str(export_dir), enable_warmup=False)

    assert manifest["signatures"] == {"serving_default": {"batch": 1}}
    assert servable.runtime_name.startswith("LiteRT")
    _assert_same_answers(_outputs(servable.predict(_request("audio", batch))), run_directly(export_dir, "audio", batch))


def test_concurrent_predicts_on_litert_each_get_their_own_answer(converted_repository):
    export_dir = converted_repository / "video" / "1"
    servable = load_servable("video", 1, str(export_dir), enable_warmup=False, litert_threads=1)
    batches = [sample_input("video", 1 + index % 3, seed=index) for index in range(24)]

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda batch: servable.predict(_request("video", batch)), batches))

    for batch, response in zip(batches, responses):
        _assert_same_answers(_outputs(response), run_directly(export_dir, "video", batch))


def test_an_input_shape_the_conversion_cannot_take_is_an_invalid_argument(converted_repository):
    servable = load_servable("audio", 1, str(converted_repository / "audio" / "1"), enable_warmup=False)

    with pytest.raises(ServingError) as raised:
        servable.predict(_request("audio", np.zeros((1, 10, 98), np.float32)))
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "input features has shape [1,10,98]; the model takes [?,126,98]" in raised.value.message


def test_the_tensorflow_runtime_can_be_forced(converted_repository):
    servable = load_servable("video", 1, str(converted_repository / "video" / "1"), enable_warmup=False,
                             runtime=TENSORFLOW_RUNTIME)
    assert servable.runtime_name == "TensorFlow"


def test_a_stale_conversion_is_not_used(tmp_path, caplog):
    export_dir = write_model(tmp_path / "video", "video", 1)
    convert_version(export_dir)
    retrained = write_model(tmp_path / "retrained", "video", 2)
    shutil.rmtree(export_dir / "variables")
    shutil.copytree(retrained / "variables", export_dir / "variables")

    with caplog.at_level(logging.WARNING, logger="model_server"):
        servable = load_servable("video", 1, str(export_dir), enable_warmup=True)

    assert servable.runtime_name == "TensorFlow"
    assert "converted from another SavedModel" in caplog.text
    batch = sample_input("video", 2)
    _assert_same_answers(_outputs(servable.predict(_request("video", batch))), run_directly(export_dir, "video", batch))


def test_the_conversion_refuses_a_model_whose_outputs_differ(tmp_path):
    export_dir = write_model(tmp_path / "video", "video", 1)
    other_model = convert(write_model(tmp_path / "other", "video", 2))

    with pytest.raises(ConversionError, match="output probabilities differs from the SavedModel's"):
        write_conversion(export_dir, other_model, warmup_samples(export_dir))
    assert not (export_dir / CONVERSION_DIR).exists()


def test_the_conversion_is_checked_on_the_warm_up_requests_and_records_its_saved_model(tmp_path):
    export_dir = write_model(tmp_path / "video", "video", 1)
    model_path = convert_version(export_dir)

    manifest = (model_path.parent / "manifest.json").read_text()
    assert '"saved_model_digest": "sha256:' in manifest
    assert '"verified_on": "2 requests' in manifest


def test_the_command_line_converts_existing_versions_and_says_why_it_cannot(tmp_path, capsys):
    export_dir = write_model(tmp_path / "video", "video", 1)
    without_warmup = write_model(tmp_path / "audio", "audio", 1, warmup=False)

    assert main([str(export_dir)]) == 0
    assert (export_dir / CONVERSION_DIR / "model.tflite").is_file()
    assert main([str(without_warmup)]) == 1
    assert "tf_serving_warmup_requests is missing" in capsys.readouterr().err
    assert not (without_warmup / CONVERSION_DIR).exists()
