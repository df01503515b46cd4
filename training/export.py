"""Export a trained Keras model in TF Serving's layout, with the signature every client of the project expects.

model_repository/<name>/<version>/ holds saved_model.pb + variables/, the label list in assets/labels.txt and
warm-up requests in assets.extra/tf_serving_warmup_requests, so TF Serving (or the development model server)
answers its first real request without a cold start, and the LiteRT conversion the development model server
runs Predict on, in assets.extra/litert/ (training.litert_export; TF Serving ignores it).

A calibration (training.calibration) is part of the served graph, so every client gets calibrated
`probabilities`; the model's own answers stay available under the `uncalibrated` signature (same input and
outputs), from which a later calibration is fitted, and assets.extra/calibration.json records what was applied.
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import json

import keras
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from training.calibration import LOG_FLOOR, Calibration
from training.litert_export import ConversionError, convert_version

SIGNATURE_NAME = "serving_default"
UNCALIBRATED_SIGNATURE_NAME = "uncalibrated"
CALIBRATION_FILE = "calibration.json"
PROBABILITIES_KEY = "probabilities"
LABELS_KEY = "labels"
WARMUP_FILE = "tf_serving_warmup_requests"


class ExportError(RuntimeError):
    """The written model does not answer as the trained one does; nothing was installed."""


def export_savedmodel(
    model: keras.Model,
    repository: Path,
    name: str,
    input_key: str,
    input_shape: tuple[int, ...],
    labels: Sequence[str],
    warmup_batch: np.ndarray,
    version: int | None = None,
    calibration: Calibration | None = None,
    calibration_details: dict | None = None,
) -> Path:
    """Write the model to repository/name/<version or next free version>/ and return that directory.

    The version directory appears in one rename, so a model server watching the repository never sees a
    half-written model; an existing version of the same number is replaced. `calibration` (default: none)
    is applied to the served probabilities; `calibration_details` (how it was fitted) go into its record.
    """
    labels = list(labels)
    calibration = calibration or Calibration.identity(len(labels))
    if len(calibration.scale) != len(labels) or len(calibration.bias) != len(labels):
        raise ValueError(f"calibration has {len(calibration.scale)} classes; the model has {len(labels)} labels")
    warmup_batch = np.asarray(warmup_batch, dtype=np.float32)
    if warmup_batch.ndim != len(input_shape) + 1 or tuple(warmup_batch.shape[1:]) != tuple(input_shape):
        raise ValueError(
            f"warm-up batch has shape {warmup_batch.shape}; expected [batch, {', '.join(map(str, input_shape))}]"
        )
    model_dir = Path(repository) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = next_version(model_dir)

    staging = Path(tempfile.mkdtemp(prefix=f".staging-{version}-", dir=model_dir))
    staging.chmod(0o755)  # mkdtemp makes it private; a model server may run as another user
    try:
        _save_signatures(model, staging, input_key, input_shape, labels, calibration)
        (staging / "assets").mkdir(exist_ok=True)
        (staging / "assets" / "labels.txt").write_text("".join(f"{label}\n" for label in labels))
        (staging / "assets.extra").mkdir()
        _write_warmup_requests(staging / "assets.extra" / WARMUP_FILE, name, input_key, warmup_batch)
        (staging / "assets.extra" / CALIBRATION_FILE).write_text(
            json.dumps({**calibration.to_dict(), **(calibration_details or {})}, indent=2) + "\n"
        )
        _verify(staging, model, input_key, input_shape, labels, warmup_batch, calibration)
        _convert_to_litert(staging, version)
        target = model_dir / str(version)
        if target.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".retired-{version}-", dir=model_dir))
            target.rename(retired / "model")
            staging.rename(target)
            shutil.rmtree(retired)
        else:
            staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def _convert_to_litert(staging: Path, version: int) -> None:
    """The version's LiteRT conversion, checked on its warm-up requests. A model that does not convert is still
    installed (TF Serving and the development model server's TensorFlow runtime serve it), with a warning."""
    try:
        convert_version(staging)
    except ConversionError as error:
        warnings.warn(f"version {version} is exported without a LiteRT conversion (the development model server "
                      f"will run it on TensorFlow): {error}", stacklevel=3)


def next_version(model_dir: Path) -> int:
    """One above the highest version in model_dir (1 in an empty or missing one)."""
    if not model_dir.is_dir():
        return 1
    versions = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def read_calibration(version_dir: Path) -> dict | None:
    """What an exported version records of its calibration (None for versions exported before calibration)."""
    path = Path(version_dir) / "assets.extra" / CALIBRATION_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _save_signatures(
    model: keras.Model,
    directory: Path,
    input_key: str,
    input_shape: tuple[int, ...],
    labels: list[str],
    calibration: Calibration,
) -> None:
    label_constant = tf.constant(labels, dtype=tf.string)
    scale = tf.constant(calibration.scale, dtype=tf.float32)
    bias = tf.constant(calibration.bias, dtype=tf.float32)

    def outputs(inputs: tf.Tensor, probabilities: tf.Tensor) -> dict[str, tf.Tensor]:
        batch = tf.shape(inputs)[0]
        tiled = tf.tile(tf.expand_dims(label_constant, 0), tf.stack([batch, 1]))
        return {PROBABILITIES_KEY: probabilities, LABELS_KEY: tiled}

    def uncalibrated(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        return outputs(inputs, tf.cast(model(inputs, training=False), tf.float32))

    def serve(inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        raw = tf.cast(model(inputs, training=False), tf.float32)
        logits = tf.math.log(tf.maximum(raw, LOG_FLOOR)) * scale + bias
        return outputs(inputs, tf.nn.softmax(logits, axis=-1))

    spec = [tf.TensorSpec(shape=(None, *input_shape), dtype=tf.float32, name=input_key)]
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name=SIGNATURE_NAME, fn=serve, input_signature=spec)
    archive.add_endpoint(name=UNCALIBRATED_SIGNATURE_NAME, fn=uncalibrated, input_signature=spec)
    archive.write_out(str(directory), verbose=False)


def _write_warmup_requests(path: Path, name: str, input_key: str, warmup_batch: np.ndarray) -> None:
    """A few requests of batch size 1 and of the whole warm-up batch, as TF Serving reads them at load."""
    batches = [warmup_batch[:1], warmup_batch[-1:], warmup_batch]
    with tf.io.TFRecordWriter(str(path)) as writer:
        for batch in batches:
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=name, signature_name=SIGNATURE_NAME)
            )
            request.inputs[input_key].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.float32))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def _verify(
    directory: Path,
    model: keras.Model,
    input_key: str,
    input_shape: tuple[int, ...],
    labels: list[str],
    warmup_batch: np.ndarray,
    calibration: Calibration,
) -> None:
    """Reload what was written and check both signatures and their answers, so a broken export never ships."""
    loaded = tf.saved_model.load(str(directory))
    raw = np.asarray(model(warmup_batch, training=False))
    for name, expected in ((SIGNATURE_NAME, calibration.apply(raw)), (UNCALIBRATED_SIGNATURE_NAME, raw)):
        if name not in loaded.signatures:
            raise ExportError(f"exported model has no {name!r} signature: {list(loaded.signatures)}")
        _verify_signature(loaded.signatures[name], name, expected, input_key, input_shape, labels, warmup_batch)


def _verify_signature(
    signature,
    name: str,
    expected: np.ndarray,
    input_key: str,
    input_shape: tuple[int, ...],
    labels: list[str],
    warmup_batch: np.ndarray,
) -> None:
    _, input_specs = signature.structured_input_signature
    if set(input_specs) != {input_key}:
        raise ExportError(f"signature inputs are {sorted(input_specs)}; expected [{input_key!r}]")
    spec = input_specs[input_key]
    if spec.dtype != tf.float32 or tuple(spec.shape.as_list()) != (None, *input_shape):
        raise ExportError(f"signature input {input_key!r} is {spec}; expected float32 {(None, *input_shape)}")
    if set(signature.structured_outputs) != {PROBABILITIES_KEY, LABELS_KEY}:
        raise ExportError(f"signature outputs are {sorted(signature.structured_outputs)}")

    outputs = signature(**{input_key: tf.constant(warmup_batch)})
    probabilities = outputs[PROBABILITIES_KEY].numpy()
    if probabilities.shape != (len(warmup_batch), len(labels)) or not np.allclose(probabilities, expected, atol=1e-5):
        raise ExportError(f"exported {name!r} probabilities differ from the trained model's (calibrated as recorded)")
    exported_labels = [[value.decode() for value in row] for row in outputs[LABELS_KEY].numpy()]
    if exported_labels != [labels] * len(warmup_batch):
        raise ExportError(f"exported label rows {exported_labels[:1]} differ from {labels}")
