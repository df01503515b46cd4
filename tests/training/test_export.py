"""Export of a tiny model: TF Serving layout, signature, label asset and warm-up records."""

import numpy as np
import pytest

pytestmark = pytest.mark.ml

import tensorflow as tf
import keras

from tensorflow_serving.apis import prediction_log_pb2  # noqa: E402

from protos.emotion.v1.constants import LABELS  # noqa: E402
from training.export import export_savedmodel  # noqa: E402

INPUT_SHAPE = (6, 3)


@pytest.fixture(scope="module")
def tiny_model():
    inputs = keras.Input(INPUT_SHAPE)
    pooled = keras.layers.GlobalAveragePooling1D()(inputs)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax")(pooled)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="module")
def warmup_batch():
    return np.random.default_rng(0).normal(size=(3, *INPUT_SHAPE)).astype(np.float32)


def test_export_writes_serving_layout_with_signature_labels_and_warmup(tmp_path, tiny_model, warmup_batch):
    version_dir = export_savedmodel(tiny_model, tmp_path, "audio", "features", INPUT_SHAPE, LABELS, warmup_batch)
    assert version_dir == tmp_path / "audio" / "1"
    assert (version_dir / "saved_model.pb").is_file()
    assert (version_dir / "variables").is_dir()
    assert version_dir.stat().st_mode & 0o755 == 0o755  # readable by a model server running as another user
    assert (version_dir / "assets" / "labels.txt").read_text().split() == list(LABELS)

    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    _, inputs = signature.structured_input_signature
    assert list(inputs) == ["features"]
    assert inputs["features"].shape.as_list() == [None, *INPUT_SHAPE]
    outputs = signature(features=tf.constant(warmup_batch))
    probabilities = outputs["probabilities"].numpy()
    assert probabilities.dtype == np.float32 and probabilities.shape == (3, len(LABELS))
    np.testing.assert_allclose(probabilities, tiny_model(warmup_batch).numpy(), atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert outputs["labels"].numpy().tolist() == [[label.encode() for label in LABELS]] * 3

    records = list(tf.data.TFRecordDataset(str(version_dir / "assets.extra" / "tf_serving_warmup_requests")))
    batch_sizes = []
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.name == "audio"
        assert request.model_spec.signature_name == "serving_default"
        batch_sizes.append(tf.make_ndarray(request.inputs["features"]).shape[0])
    assert 1 in batch_sizes and max(batch_sizes) > 1


def test_export_takes_next_free_version_or_replaces_a_given_one(tmp_path, tiny_model, warmup_batch):
    first = export_savedmodel(tiny_model, tmp_path, "video", "image", INPUT_SHAPE, LABELS, warmup_batch)
    second = export_savedmodel(tiny_model, tmp_path, "video", "image", INPUT_SHAPE, LABELS, warmup_batch)
    replaced = export_savedmodel(tiny_model, tmp_path, "video", "image", INPUT_SHAPE, LABELS, warmup_batch, version=1)
    assert (first.name, second.name, replaced.name) == ("1", "2", "1")
    assert sorted(p.name for p in (tmp_path / "video").iterdir()) == ["1", "2"]  # no staging leftovers


def test_export_rejects_a_warmup_batch_of_the_wrong_shape(tmp_path, tiny_model):
    with pytest.raises(ValueError, match="warm-up batch"):
        export_savedmodel(tiny_model, tmp_path, "audio", "features", INPUT_SHAPE, LABELS, np.zeros((2, 5, 3)))


def test_calibrated_export_serves_calibrated_probabilities_and_keeps_the_raw_ones(tmp_path, tiny_model, warmup_batch):
    from training.calibration import Calibration
    from training.export import read_calibration

    calibration = Calibration("temperature", (0.5,) * len(LABELS), (0.0,) * len(LABELS))
    version_dir = export_savedmodel(tiny_model, tmp_path, "audio", "features", INPUT_SHAPE, LABELS, warmup_batch,
                                    calibration=calibration, calibration_details={"fitted_on": "test"})
    loaded = tf.saved_model.load(str(version_dir))
    raw = tiny_model(warmup_batch).numpy()
    served = loaded.signatures["serving_default"](features=tf.constant(warmup_batch))["probabilities"].numpy()
    uncalibrated = loaded.signatures["uncalibrated"](features=tf.constant(warmup_batch))["probabilities"].numpy()
    tempered = np.sqrt(raw) / np.sqrt(raw).sum(axis=1, keepdims=True)  # temperature 2 = scale 0.5
    np.testing.assert_allclose(served, tempered, atol=1e-5)
    np.testing.assert_allclose(uncalibrated, raw, atol=1e-6)
    record = read_calibration(version_dir)
    assert record["method"] == "temperature" and record["scale"] == [0.5] * len(LABELS)
    assert record["fitted_on"] == "test"


def test_export_without_calibration_serves_the_model_unchanged_and_records_none(tmp_path, tiny_model, warmup_batch):
    from training.export import read_calibration

    version_dir = export_savedmodel(tiny_model, tmp_path, "audio", "features", INPUT_SHAPE, LABELS, warmup_batch)
    assert read_calibration(version_dir)["method"] == "none"


def test_export_rejects_a_calibration_for_another_label_count(tmp_path, tiny_model, warmup_batch):
    from training.calibration import Calibration

    with pytest.raises(ValueError, match="calibration has 3 classes"):
        export_savedmodel(tiny_model, tmp_path, "audio", "features", INPUT_SHAPE, LABELS, warmup_batch,
                          calibration=Calibration.identity(3))
