"""Tiny SavedModels that follow the project's model contract, for testing the development model server.

"audio": input "features" float32 [-1,126,98]; "video": input "image" float32 [-1,48,48,1]; both output
"probabilities" float32 [-1,7] (softmax) and "labels" string [-1,7], with assets/labels.txt and TF Serving
warm-up records. Each version has its own weights, so answers tell versions apart.

Also a script (for tests that run without TensorFlow), from the repo root:
    .venv-ml/bin/python -m tests.model_server.dev_server_models OUT_DIR
writes OUT_DIR/audio/1 and OUT_DIR/reference.npz (an input and the probabilities version 1 gives for it).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

from protos.emotion.v1.constants import LABELS

INPUTS = {"audio": ("features", (126, 98)), "video": ("image", (48, 48, 1))}
WARMUP_BATCH_SIZES = (1, 3)


class _TinyClassifier(tf.Module):
    """Normalise, flatten, one dense layer, softmax; plus the label names tiled per row."""

    def __init__(self, input_shape: tuple[int, ...], seed: int):
        super().__init__()
        rng = np.random.default_rng(seed)
        size = int(np.prod(input_shape))
        self.mean = tf.Variable(rng.normal(size=input_shape).astype(np.float32))
        self.std = tf.Variable(rng.uniform(0.5, 2.0, size=input_shape).astype(np.float32))
        self.weights = tf.Variable(rng.normal(scale=0.05, size=(size, len(LABELS))).astype(np.float32))
        self.bias = tf.Variable(rng.normal(size=len(LABELS)).astype(np.float32))
        self.size = size
        self.labels = tf.constant(LABELS)

    def serve(self, inputs: tf.Tensor) -> dict[str, tf.Tensor]:
        flat = tf.reshape((inputs - self.mean) / self.std, [-1, self.size])
        probabilities = tf.nn.softmax(flat @ self.weights + self.bias)
        labels = tf.tile(self.labels[tf.newaxis, :], [tf.shape(inputs)[0], 1])
        return {"probabilities": probabilities, "labels": labels}


def write_model(base_path: Path, name: str, version: int, *, warmup: bool = True) -> Path:
    """Export version `version` of model `name` (weights seeded by the version) to base_path/version."""
    input_key, input_shape = INPUTS[name]
    module = _TinyClassifier(input_shape, seed=version)
    signature = tf.function(module.serve).get_concrete_function(
        tf.TensorSpec([None, *input_shape], tf.float32, name=input_key)
    )
    export_dir = Path(base_path) / str(version)
    tf.saved_model.save(module, str(export_dir), signatures={"serving_default": signature})
    (export_dir / "assets").mkdir(exist_ok=True)
    (export_dir / "assets" / "labels.txt").write_text("".join(f"{label}\n" for label in LABELS))
    if warmup:
        (export_dir / "assets.extra").mkdir()
        with tf.io.TFRecordWriter(str(export_dir / "assets.extra" / "tf_serving_warmup_requests")) as writer:
            for batch_size in WARMUP_BATCH_SIZES:
                request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(name=name))
                request.inputs[input_key].CopyFrom(
                    tf.make_tensor_proto(np.zeros((batch_size, *input_shape), np.float32))
                )
                record = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
                writer.write(record.SerializeToString())
    return export_dir


def sample_input(name: str, batch_size: int, seed: int = 0) -> np.ndarray:
    _, input_shape = INPUTS[name]
    return np.random.default_rng(seed).normal(size=(batch_size, *input_shape)).astype(np.float32)


def run_directly(export_dir: Path, name: str, batch: np.ndarray) -> dict[str, np.ndarray]:
    """What the exported model answers when TensorFlow runs it in this process (the reference)."""
    input_key, _ = INPUTS[name]
    model = tf.saved_model.load(str(export_dir))
    outputs = model.signatures["serving_default"](**{input_key: tf.constant(batch)})
    return {alias: value.numpy() for alias, value in outputs.items()}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    export_dir = write_model(out / "audio", "audio", 1)
    batch = sample_input("audio", 2)
    probabilities = run_directly(export_dir, "audio", batch)["probabilities"]
    np.savez(out / "reference.npz", features=batch, probabilities=probabilities)


if __name__ == "__main__":
    main(sys.argv[1])
