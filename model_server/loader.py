"""One loaded version of a model: its signatures, Predict on it, and TF Serving's warm-up replay.

Predict follows TF Serving's predict_util.cc step by step (signature lookup, input checks, output
filter, run), with its status codes and messages, so a client cannot tell the two servers apart.
Signatures are read from saved_model.pb, as TF Serving reports them. Only their execution has two runtimes:
LiteRT (litert_runtime.py) for a version whose LiteRT conversion matches its SavedModel (litert_conversion.py),
which is faster and needs no TensorFlow, and otherwise a TensorFlow Session as TF Serving's (tf_runtime.py).
Everything around the run (lookup, checks, filter, encoding, batching, warm-up) is this one code path, and
needs no TensorFlow: messages are model_server.wire's, tensors are decoded by numpy (protos.tfserving.tensors),
the warm-up file is read by tfrecord.py. TensorFlow is imported only for a version that runs on it.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from google.protobuf.message import DecodeError, Message

from model_server import wire
from model_server.batching import BatchScheduler
from model_server.errors import ServingError
from model_server.litert_conversion import find_conversion
from model_server.litert_runtime import LiteRtRuntime
from model_server.source import SAVED_MODEL_FILE
from model_server.tfrecord import DataLossError, read_records
from protos.tfserving.tensors import fill_tensor_proto, to_ndarray

log = logging.getLogger(__name__)

SERVE_TAG = "serve"
AUTO_RUNTIME = "auto"  # LiteRT where a version has a matching conversion, else TensorFlow
TENSORFLOW_RUNTIME = "tensorflow"  # always a TensorFlow Session (for comparisons)
RUNTIMES = (AUTO_RUNTIME, TENSORFLOW_RUNTIME)
_INIT_OP_SIGNATURE = "__saved_model_init_op"  # what a SavedModel runs at load; no Predict signature
DEFAULT_SIGNATURE = "serving_default"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's WarmupConsts::kMaxNumRecords


@dataclass(frozen=True)
class SessionSettings:
    """What the TensorFlow Session of a version that runs on TensorFlow is configured with
    (tf_runtime.session_config builds its ConfigProto from these)."""

    intra_op: int = 0  # --tensorflow_intra_op_parallelism (0: TensorFlow chooses)
    inter_op: int = 0  # --tensorflow_inter_op_parallelism
    from_file: Message | None = None  # --tensorflow_session_config_file's ConfigProto



def read_signature_defs(export_dir: str) -> dict[str, Message]:
    """The SignatureDefs of the "serve" MetaGraphDef, exactly as saved (GetModelMetadata returns these; what the
    vendored SavedModel leaves unparsed, the graph, stays out of memory)."""
    path = Path(export_dir) / SAVED_MODEL_FILE
    saved_model = wire.SavedModel()
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
        self, name: str, version: int, export_dir: str, session: SessionSettings | None = None,
        batch_scheduler: BatchScheduler | None = None, runtime: str = AUTO_RUNTIME, litert_threads: int = 1,
    ):
        self.name = name
        self.version = version
        self.export_dir = export_dir
        log.info("Reading SavedModel from: %s", export_dir)
        self.signature_defs = read_signature_defs(export_dir)
        self.runtime_name, self._runtime = _load_runtime(
            export_dir, self.signature_defs, runtime, session or SessionSettings(), litert_threads
        )
        log.info("Predict of servable {name: %s version: %d} runs on %s", name, version, self.runtime_name)
        self._batch_scheduler = batch_scheduler
        if batch_scheduler is not None:
            log.info("Wrapping session to perform batch processing")

    def predict(self, request: Message) -> Message:
        """Answer a wire.PredictRequest with a wire.PredictResponse, or raise ServingError."""
        signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(signature_name)
        if signature is None:
            raise ServingError(
                grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{signature_name}" not found.'
            )
        response = wire.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.signature_name = signature_name
        response.model_spec.version.value = self.version

        inputs = _parse_inputs(signature, request)
        output_aliases = _output_aliases(signature, request.output_filter)
        _check_input_dtypes(signature, request)
        if self._batch_scheduler is None:
            outputs = self.run(signature_name, inputs, output_aliases)
        else:
            queue = (self, signature_name, tuple(sorted(inputs)), tuple(output_aliases))
            run_batch = functools.partial(self.run, signature_name, output_aliases=output_aliases)
            outputs = self._batch_scheduler.run(queue, inputs, run_batch)
        for alias in output_aliases:
            try:
                fill_tensor_proto(response.outputs[alias], outputs[alias], typed=True)
            except TypeError as error:
                raise ServingError(grpc.StatusCode.INTERNAL, f"output {alias} cannot be encoded: {error}") from None
        return response

    def run(self, signature_name: str, inputs: dict[str, np.ndarray], output_aliases: list[str]
            ) -> dict[str, np.ndarray]:
        """One run of the signature on this version's runtime: inputs and outputs by their aliases."""
        return self._runtime.run(signature_name, inputs, output_aliases)

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
            for record in read_records(path):
                self._replay(record, path)
                count += 1
                if count > MAX_WARMUP_RECORDS:
                    raise ServingError(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {path}",
                    )
        except DataLossError as error:
            raise ServingError(
                grpc.StatusCode.DATA_LOSS, f"{error}. Please verify your warmup data is in TFRecord format."
            ) from None
        elapsed_us = int((time.monotonic() - started) * 1e6)
        log.info(
            "Finished reading warmup data for model at %s. Number of warmup records read: %d. "
            "Elapsed time (microseconds): %d.", path, count, elapsed_us,
        )

    def _replay(self, record: bytes, path: Path) -> None:
        prediction_log = wire.PredictionLog()
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
    name: str, version: int, export_dir: str, enable_warmup: bool, session: SessionSettings | None = None,
    batch_scheduler: BatchScheduler | None = None, runtime: str = AUTO_RUNTIME, litert_threads: int = 1,
) -> Servable:
    """Load one version and, when enabled, warm it up; any failure leaves nothing loaded."""
    servable = Servable(name, version, export_dir, session, batch_scheduler, runtime, litert_threads)
    if enable_warmup:
        servable.run_warmup()
    return servable


def _load_runtime(
    export_dir: str, signature_defs: dict[str, Message], runtime: str, session: SessionSettings, litert_threads: int,
):
    """(name, runtime) executing the version's signatures: LiteRT when allowed and its conversion matches the
    SavedModel and covers every signature, else a TensorFlow Session (TensorFlow is imported only then)."""
    if runtime == AUTO_RUNTIME:
        conversion = find_conversion(export_dir)
        if conversion is not None:
            litert = LiteRtRuntime(conversion.model_path.read_bytes(), litert_threads)
            missing = sorted(set(signature_defs) - {_INIT_OP_SIGNATURE} - set(litert.signatures))
            if not missing:
                return f"LiteRT ({conversion.model_path})", litert
            log.warning("Not using the LiteRT conversion %s: it lacks the signatures %s; convert the version again "
                        "(python -m training.litert_export %s)", conversion.model_path, missing, export_dir)
    from model_server import tf_runtime  # noqa: PLC0415 (TensorFlow only where a version runs on it)

    config = tf_runtime.session_config(session.intra_op, session.inter_op, session.from_file)
    return "TensorFlow", tf_runtime.TfSessionRuntime(export_dir, signature_defs, config)


def _parse_inputs(signature: Message, request: Message) -> dict:
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
        except (TypeError, ValueError, OverflowError):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"tensor parsing error: {alias}") from None
    return inputs


def _output_aliases(signature: Message, output_filter) -> list[str]:
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


def _check_input_dtypes(signature: Message, request: Message) -> None:
    """Session::Run's feed check: its args are the feeds in tensor-name order."""
    infos = sorted(signature.inputs.items(), key=lambda item: item[1].name)
    for index, (alias, info) in enumerate(infos):
        provided = request.inputs[alias].dtype
        if provided != info.dtype:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Expects arg[{index}] to be {_data_type_string(info.dtype)} but "
                f"{_data_type_string(provided)} is provided",
            )


def _data_type_string(dtype: int) -> str:
    """TensorFlow's DataTypeString ("float", "double", "string"...), as in its error messages."""
    try:
        return wire.DataType.Name(dtype).removeprefix("DT_").lower()
    except ValueError:  # a number no DataType has (proto3 enums take any)
        return f"unknown dtype {dtype}"


def _set(names) -> str:
    """A set of names as TF Serving prints one: sorted, comma-separated, in braces."""
    return "{" + ",".join(sorted(names)) + "}"
