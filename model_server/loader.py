"""One loaded version of a model: its signatures, Predict on it, and TF Serving's warm-up replay.

Predict follows TF Serving's predict_util.cc step by step (signature lookup, input checks, output
filter, run), with its status codes and messages, so a client cannot tell the two servers apart.
Signatures are read from saved_model.pb, as TF Serving reports them, and run as TF Serving runs them: the
MetaGraphDef is loaded into a TensorFlow Session, and Predict is one Session.run feeding the signature's input
tensors and fetching the outputs asked for (dtypes are checked, shapes are left to the ops). This costs about
1 ms less per call than calling the signature revived by tf.saved_model.load (docs/performance.md).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, saved_model_pb2
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from model_server.batching import BatchScheduler
from model_server.errors import ServingError
from model_server.source import SAVED_MODEL_FILE
from model_server.tensors import data_type_string, to_ndarray, to_proto_field

log = logging.getLogger(__name__)

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords


def configure_threads(intra_op: int, inter_op: int) -> None:
    """Size TensorFlow's eager thread pools (warm-up reading) before anything runs; 0 leaves the choice to
    TensorFlow."""
    if intra_op > 0:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
    if inter_op > 0:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)


def session_config(
    intra_op: int, inter_op: int, from_file: config_pb2.ConfigProto | None = None
) -> config_pb2.ConfigProto:
    """The configuration every loaded version's session runs with: --tensorflow_session_config_file's, its
    thread pools set by the --tensorflow_*_parallelism flags when either is positive, as TF Serving does."""
    config = config_pb2.ConfigProto()
    if from_file is not None:
        config.CopyFrom(from_file)
    if intra_op > 0 or inter_op > 0:
        config.intra_op_parallelism_threads = max(intra_op, 0)
        config.inter_op_parallelism_threads = max(inter_op, 0)
    return config


def read_signature_defs(export_dir: str) -> dict[str, meta_graph_pb2.SignatureDef]:
    """The SignatureDefs of the "serve" MetaGraphDef, exactly as saved (GetModelMetadata returns these)."""
    path = Path(export_dir) / SAVED_MODEL_FILE
    saved_model = saved_model_pb2.SavedModel()
    try:
        saved_model.ParseFromString(path.read_bytes())
    except DecodeError:
        raise ServingError(grpc.StatusCode.DATA_LOSS, f"Can't parse {path} as binary proto") from None
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == {SERVE_TAG}:
            return dict(meta_graph.signature_def)
    available = [",".join(meta_graph.meta_info_def.tags) for meta_graph in saved_model.meta_graphs]
    raise ServingError(
        grpc.StatusCode.NOT_FOUND,
        f"Could not find meta graph def matching supplied tags: {{ {SERVE_TAG} }}. To inspect available tag-sets "
        f"in the SavedModel, please use the SavedModel CLI: `saved_model_cli`. Available tag-sets: {available}",
    )


class Servable:
    """A loaded model version; safe to call from many threads at once."""

    def __init__(
        self, name: str, version: int, export_dir: str, session_config: config_pb2.ConfigProto | None = None,
        batch_scheduler: BatchScheduler | None = None,
    ):
        self.name = name
        self.version = version
        self.export_dir = export_dir
        log.info("Reading SavedModel from: %s", export_dir)
        self.signature_defs = read_signature_defs(export_dir)
        graph = tf.Graph()
        self._session = tf.compat.v1.Session(graph=graph, config=session_config)
        with graph.as_default():
            tf.compat.v1.saved_model.load(self._session, [SERVE_TAG], export_dir)
        self._callables: dict[tuple, object] = {}
        self._lock = threading.Lock()
        self._batch_scheduler = batch_scheduler
        if batch_scheduler is not None:
            log.info("Wrapping session to perform batch processing")

    def predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(signature_name)
        if signature is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature_name}" not found.'
            )
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.signature_name = signature_name
        response.model_spec.version.value = self.version

        inputs = _parse_inputs(signature, request)
        output_aliases = _output_aliases(signature, request.output_filter)
        _check_input_dtypes(signature, request)
        if self._batch_scheduler is None:
            outputs = self.run(signature, inputs, output_aliases)
        else:
            queue = (self, signature_name, tuple(sorted(inputs)), tuple(output_aliases))
            run_batch = functools.partial(self.run, signature, output_aliases=output_aliases)
            outputs = self._batch_scheduler.run(queue, inputs, run_batch)
        for alias in output_aliases:
            response.outputs[alias].CopyFrom(to_proto_field(outputs[alias]))
        return response

    def run(
        self, signature: meta_graph_pb2.SignatureDef, inputs: dict[str, np.ndarray], output_aliases: list[str]
    ) -> dict[str, np.ndarray]:
        """One Session.run of the signature: inputs and outputs by their aliases."""
        feed_aliases, fetch_aliases = tuple(sorted(inputs)), tuple(sorted(output_aliases))
        run = self._callable(signature, feed_aliases, fetch_aliases)
        try:
            values = run(*(inputs[alias] for alias in feed_aliases))
        except tf.errors.OpError as error:
            raise ServingError.from_canonical_code(error.error_code, error.message) from None
        return dict(zip(fetch_aliases, values))

    def _callable(self, signature: meta_graph_pb2.SignatureDef, feed_aliases: tuple[str, ...],
                  fetch_aliases: tuple[str, ...]):
        """A callable of the C++ Session (Session::MakeCallable) per set of feeds and fetches. Unlike
        Session.run it does no per-call Python work, and in particular no feed shape check, which TF
        Serving's Session::Run does not make either (the ops check shapes, with their own messages).
        Session.make_callable(fetches, feed_list) would wrap Session.run; the options form is the one
        that reaches the C++ API (Keras' TF1 backend has long used it the same way)."""
        key = (id(signature), feed_aliases, fetch_aliases)
        with self._lock:
            run = self._callables.get(key)
            if run is None:
                options = config_pb2.CallableOptions(
                    feed=[signature.inputs[alias].name for alias in feed_aliases],
                    fetch=[signature.outputs[alias].name for alias in fetch_aliases],
                )
                run = self._session._make_callable_from_options(options)  # noqa: SLF001 (see above)
                self._callables[key] = run
        return run

    def run_warmup(self) -> None:
        """Replay assets.extra/tf_serving_warmup_requests through Predict, as TF Serving does at load."""
        path = Path(self.export_dir) / WARMUP_FILE
        if not path.is_file():
            log.info("No warmup data file found at %s", path)
            return
        log.info("Starting to read warmup data for model at %s", path)
        started = time.monotonic()
        count = 0
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                self._replay(record.numpy(), path)
                count += 1
                if count > MAX_WARMUP_RECORDS:
                    raise ServingError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}",
                    )
        except tf.errors.DataLossError as error:
            raise ServingError(
                grpc.StatusCode.DATA_LOSS, f"{error.message}. Please verify your warmup data is in TFRecord format."
            ) from None
        elapsed_us = int((time.monotonic() - started) * 1e6)
        log.info(
            "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
            "Elapsed time (microseconds): %d.", path, count, elapsed_us,
        )

    def _replay(self, record: bytes, path: Path) -> None:
        prediction_log = prediction_log_pb2.PredictionLog()
        try:
            prediction_log.ParseFromString(record)
        except DecodeError:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT, f"Failed to parse warmup record: {record!r} from {path}"
            ) from None
        kind = prediction_log.WhichOneof("log_type")
        if kind == "predict_log":
            self.predict(prediction_log.predict_log.request)
        elif kind is not None:
            raise ServingError(
                grpc.StatusCode.UNIMPLEMENTED,
                f"Unsupported log_type for warmup: {kind} (the development model server replays predict_log only)",
            )


def load_servable(
    name: str, version: int, export_dir: str, enable_warmup: bool,
    session_config: config_pb2.ConfigProto | None = None, batch_scheduler: BatchScheduler | None = None,
) -> Servable:
    """Load one version and, when enabled, warm it up; any failure leaves nothing loaded."""
    try:
        servable = Servable(name, version, export_dir, session_config, batch_scheduler)
        if enable_warmup:
            servable.run_warmup()
    except tf.errors.OpError as error:
        raise ServingError.from_canonical_code(error.error_code, error.message) from None
    return servable


def _parse_inputs(signature: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest) -> dict:
    sent, expected = set(request.inputs), set(signature.inputs)
    if len(sent) != len(expected):
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"input size does not match signature: {len(sent)}!={len(expected)} len({_set(sent)}) != "
            f"len({_set(expected)}). Sent extra: {_set(sent - expected)}. "
            f"Missing but required: {_set(expected - sent)}.",
        )
    inputs = {}
    for alias in sorted(sent):
        if alias not in expected:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input tensor alias not found in signature: {alias}. Inputs expected to be in the set "
                f"{_set(expected)}.",
            )
        try:
            inputs[alias] = to_ndarray(request.inputs[alias])
        except ValueError:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}") from None
    return inputs


def _output_aliases(signature: meta_graph_pb2.SignatureDef, output_filter) -> list[str]:
    """The outputs to return: those filtered, or all of the signature's."""
    aliases: list[str] = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the set "
                f"{_set(signature.outputs)}.",
            )
        if alias in aliases:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"duplicate output tensor alias: {alias}")
        aliases.append(alias)
    return aliases or list(signature.outputs)


def _check_input_dtypes(signature: meta_graph_pb2.SignatureDef, request: predict_pb2.PredictRequest) -> None:
    """Session::Run's feed check: its args are the feeds in tensor-name order."""
    infos = sorted(signature.inputs.items(), key=lambda item: item[1].name)
    for index, (alias, info) in enumerate(infos):
        provided = request.inputs[alias].dtype
        if provided != info.dtype:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expects arg[{index}] to be {data_type_string(info.dtype)} but "
                f"{data_type_string(provided)} is provided",
            )


def _set(names) -> str:
    """A set of names as TF Serving prints one: sorted, comma-separated, in braces."""
    return "{" + ",".join(sorted(names)) + "}"
