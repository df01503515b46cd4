"""LiteRT conversions of exported versions, so the development model server runs Predict without TensorFlow.

Every signature of the version's SavedModel goes into one assets.extra/litert/model.tflite (signatures share their
weights), with a manifest.json tying it to the SavedModel's digest (model_server/litert_conversion.py). Before
anything is written, the conversion is run the way the server runs it and must give the SavedModel's answers
on the version's warm-up requests: float outputs within MAX_ABS_DIFFERENCE, every other output equal.

Each signature is converted with a dynamic batch dimension when LiteRT's built-in ops can express it. Some
graphs cannot: the voice model's percentiles (keras.ops.quantile) compute their index in float64 from the
dynamic batch's shape, ops LiteRT has no kernel for (and the pip LiteRT has no TensorFlow fallback). With the
batch fixed at 1 every shape is static, the index arithmetic folds into constants at conversion, and the
graph's numerics are untouched; the server then runs a batch row by row.

    python -m training.litert_export model_repository/audio/3 model_repository/video/2
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.lite.python.convert_phase import ConverterError  # what TFLiteConverter.convert raises
from tensorflow_serving.apis import prediction_log_pb2

from model_server.litert_conversion import (
    CONVERSION_DIR, MANIFEST_FILE, MANIFEST_FORMAT, MODEL_FILE, saved_model_digest,
)
from model_server.litert_runtime import LiteRtRuntime

MAX_ABS_DIFFERENCE = 1e-5  # of a float output (probabilities), LiteRT against the SavedModel
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
_INIT_OP_SIGNATURE = "__saved_model_init_op"

Sample = dict[str, np.ndarray]  # one request's inputs, by alias


class ConversionError(RuntimeError):
    """The version could not be converted, or its conversion does not answer as the SavedModel; nothing was
    written."""


def convert_version(version_dir: Path, samples: list[Sample] | None = None) -> Path:
    """Convert, verify and write the version's LiteRT conversion; returns the model file written.

    `samples` (default: the inputs of the version's warm-up requests) are what the conversion is checked on.
    """
    version_dir = Path(version_dir)
    samples = warmup_samples(version_dir) if samples is None else samples
    return write_conversion(version_dir, convert(version_dir), samples)


def convert(version_dir: Path) -> bytes:
    """A .tflite model holding every signature of the SavedModel (dynamic batch where possible, else 1)."""
    loaded = tf.saved_model.load(str(version_dir))
    try:
        return _convert(loaded, batch=None)
    except ConverterError:
        pass  # graphs whose shape arithmetic needs a static batch: see the module's docstring
    try:
        return _convert(loaded, batch=1)
    except ConverterError as error:
        raise ConversionError(f"{version_dir} does not convert to LiteRT's built-in ops: {error}") from None


def write_conversion(version_dir: Path, model: bytes, samples: list[Sample]) -> Path:
    """Check `model` against the SavedModel on `samples` and, when it answers the same, write it with its
    manifest; ConversionError (nothing written) otherwise."""
    version_dir = Path(version_dir)
    runtime = LiteRtRuntime(model, threads=1)
    loaded = tf.saved_model.load(str(version_dir))
    signatures = {name: fn for name, fn in loaded.signatures.items() if name != _INIT_OP_SIGNATURE}
    missing = sorted(set(signatures) - set(runtime.signatures))
    if missing:
        raise ConversionError(f"the LiteRT model lacks the signatures {missing} of {version_dir}")
    differences = {name: _verify(name, fn, runtime, samples, version_dir) for name, fn in signatures.items()}

    directory = version_dir / CONVERSION_DIR
    directory.mkdir(parents=True, exist_ok=True)
    manifest = {
        "format": MANIFEST_FORMAT,
        "saved_model_digest": saved_model_digest(version_dir),
        "converted_with": f"tensorflow {tf.__version__}",
        "signatures": {
            name: {"batch": "any" if all(shape[:1] == (-1,) for shape in runtime.signatures[name].values()) else 1}
            for name in signatures
        },
        "verified_on": f"{len(samples)} requests (the version's warm-up requests unless given)",
        "max_abs_difference": differences,
    }
    model_path = directory / MODEL_FILE
    _write_atomically(model_path, model)
    _write_atomically(directory / MANIFEST_FILE, (json.dumps(manifest, indent=2) + "\n").encode())
    return model_path


def warmup_samples(version_dir: Path) -> list[Sample]:
    """The inputs of the version's warm-up requests (TF Serving's assets.extra/tf_serving_warmup_requests)."""
    path = Path(version_dir) / WARMUP_FILE
    if not path.is_file():
        raise ConversionError(f"{path} is missing: give sample inputs to check the conversion on")
    samples = []
    for record in tf.data.TFRecordDataset(str(path)):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        samples.append({alias: tf.make_ndarray(tensor) for alias, tensor in request.inputs.items()})
    return samples


def _convert(loaded, batch: int | None) -> bytes:
    functions = []
    for name, signature in loaded.signatures.items():
        if name == _INIT_OP_SIGNATURE:
            continue
        specs = {
            alias: tf.TensorSpec([batch, *spec.shape[1:]], spec.dtype, name=alias)
            for alias, spec in signature.structured_input_signature[1].items()
        }

        def call(_signature=signature, **inputs):
            return _signature(**inputs)

        call.__name__ = name  # LiteRT names a signature after its function
        functions.append(tf.function(call).get_concrete_function(**specs))
    return tf.lite.TFLiteConverter.from_concrete_functions(functions, loaded).convert()


def _verify(name: str, signature, runtime: LiteRtRuntime, samples: list[Sample], version_dir: Path
            ) -> dict[str, float]:
    """The largest difference per float output over the samples; ConversionError when any output differs."""
    aliases = set(signature.structured_input_signature[1])
    fitting = [sample for sample in samples if set(sample) == aliases]
    if not fitting:
        raise ConversionError(f"no sample inputs {sorted(aliases)} to check signature {name!r} of {version_dir} on")
    largest: dict[str, float] = {}
    for sample in fitting:
        expected = {alias: value.numpy() for alias, value in signature(**sample).items()}
        actual = runtime.run(name, sample, list(expected))
        for alias, want in expected.items():
            got = actual[alias]
            if got.shape != want.shape:
                raise ConversionError(f"{name}: output {alias} has shape {got.shape} on LiteRT, {want.shape} in "
                                      f"the SavedModel of {version_dir}")
            if want.dtype.kind == "f":
                difference = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
                if not difference <= MAX_ABS_DIFFERENCE:
                    raise ConversionError(f"{name}: output {alias} differs from the SavedModel's by {difference:.3g} "
                                          f"(at most {MAX_ABS_DIFFERENCE} allowed) in {version_dir}")
                largest[alias] = max(largest.get(alias, 0.0), difference)
            elif not np.array_equal(got, want):
                raise ConversionError(f"{name}: output {alias} differs from the SavedModel's in {version_dir}")
    return largest


def _write_atomically(path: Path, content: bytes) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(content)
    partial.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.litert_export",
        description="Write the LiteRT conversion of exported model versions (checked against their warm-up "
        "requests) into their assets.extra/litert/.",
    )
    parser.add_argument("versions", nargs="+", type=Path, help="version directories, e.g. model_repository/audio/3")
    args = parser.parse_args(argv)
    for version_dir in args.versions:
        try:
            written = convert_version(version_dir)
        except ConversionError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        manifest = json.loads((written.parent / MANIFEST_FILE).read_text())
        print(f"{written}: {written.stat().st_size} bytes, signatures {manifest['signatures']}, "
              f"largest differences {manifest['max_abs_difference']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
