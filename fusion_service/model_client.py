"""Client of one model on a TensorFlow Serving gRPC endpoint (or the development model server).

Talks only through TF Serving's public API (vendored stubs in protos/tfserving), so it cannot
tell the two servers apart and needs no TensorFlow.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import grpc
import numpy as np

from fusion_service.metrics import MODEL_BREAKER_OPEN
from fusion_service.resilience import CircuitBreaker, RetryPolicy
from fusion_service.tensors import to_ndarray, to_tensor_proto
from protos.emotion.v1.constants import LABELS
from protos.tfserving import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2,
    prediction_service_pb2_grpc,
    types_pb2,
)

log = logging.getLogger(__name__)

_AVAILABLE = get_model_status_pb2.ModelVersionStatus.AVAILABLE
# A call is only worth starting with at least this much of the caller's deadline left.
_MIN_CALL_S = 0.01
_PREDICT_SERVICE = prediction_service_pb2.DESCRIPTOR.services_by_name["PredictionService"].full_name


@dataclass(frozen=True)
class ModelContract:
    """What the service expects of a served model: its signature and label list."""

    name: str
    input_key: str
    input_shape: tuple[int, ...]  # without the batch dimension
    signature_name: str = "serving_default"
    output_key: str = "probabilities"
    labels_key: str = "labels"
    labels: tuple[str, ...] = LABELS


class ModelError(Exception):
    """The model server failed, timed out, or serves a model that does not fit the contract."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None, counts_against_server: bool = True):
        super().__init__(message)
        self.code = code
        # False when the failure is the caller's doing (its deadline), not a sign of a failing server.
        self.counts_against_server = counts_against_server


@dataclass(frozen=True)
class Prediction:
    probabilities: np.ndarray  # [batch, len(labels)]
    version: int


@dataclass(frozen=True)
class ModelHealth:
    ready: bool
    reason: str = ""
    version: int = 0


class ModelClient:
    """One long-lived channel to one model; every call carries a deadline.

    Predict calls that fail with UNAVAILABLE are retried by gRPC (RetryPolicy) within the call's deadline;
    after repeated failures the circuit breaker makes calls fail at once for a while, so a hanging server
    costs each request nothing instead of its whole deadline.
    """

    def __init__(
        self,
        target: str,
        contract: ModelContract,
        timeout_s: float,
        credentials: grpc.ChannelCredentials | None = None,
        retry: RetryPolicy = RetryPolicy(),
        breaker: CircuitBreaker | None = None,
    ):
        self.target = target
        self.contract = contract
        self.timeout_s = timeout_s
        self.breaker = breaker or CircuitBreaker(failure_threshold=5, open_s=5.0)
        options = [
            # With a dns:/// target naming a headless Service, spread calls over every model-server pod.
            ("grpc.lb_policy_name", "round_robin"),
            ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 30_000),
            # gRPC's reconnect back-off grows to 120 s by default: a server back after a long outage
            # would stay unused that long. Keep trying every second instead (a refused connect costs
            # next to nothing), starting fast so a model server that is still loading is found soon.
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", 1_000),
            ("grpc.enable_retries", 1),
            ("grpc.service_config", retry.service_config(_PREDICT_SERVICE, "Predict")),
        ]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=options)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def _spec(self) -> model_pb2.ModelSpec:
        return model_pb2.ModelSpec(name=self.contract.name, signature_name=self.contract.signature_name)

    async def predict(self, batch: np.ndarray, deadline: float | None = None) -> Prediction:
        """Scores for a batch of model inputs, shape [n, *contract.input_shape].

        One call to the server, retries included, lasts at most `timeout_s` and never past `deadline`
        (time.monotonic()), the caller's.
        """
        if not self.breaker.try_acquire():
            raise ModelError(
                f"model {self.contract.name!r} at {self.target} is skipped for {self.breaker.retry_in_s():.1f} s "
                f"after {self.breaker.failures} failed calls in a row",
                code=grpc.StatusCode.UNAVAILABLE,
            )
        try:
            prediction = await self._predict_scores(batch, deadline)
        except ModelError as error:
            if error.counts_against_server:
                self.breaker.failure()
            else:
                self.breaker.release()
            raise
        except BaseException:  # cancelled: says nothing about the server
            self.breaker.release()
            raise
        else:
            self.breaker.success()
            return prediction
        finally:
            MODEL_BREAKER_OPEN.labels(self.contract.name).set(1 if self.breaker.is_open else 0)

    async def _predict_scores(self, batch: np.ndarray, deadline: float | None) -> Prediction:
        c = self.contract
        request = predict_pb2.PredictRequest(
            model_spec=self._spec(),
            inputs={c.input_key: to_tensor_proto(np.asarray(batch, dtype=np.float32))},
            output_filter=[c.output_key],
        )
        timeout = self.timeout_s if deadline is None else min(self.timeout_s, deadline - time.monotonic())
        if timeout < _MIN_CALL_S:
            raise ModelError(
                f"Predict on model {c.name!r} at {self.target}: the caller's deadline left no time for it",
                code=grpc.StatusCode.DEADLINE_EXCEEDED,
                counts_against_server=False,
            )
        try:
            response = await self._call(self._predict.Predict, request, "Predict", timeout)
        except ModelError as error:
            if error.code == grpc.StatusCode.DEADLINE_EXCEEDED and timeout < self.timeout_s:
                error.counts_against_server = False  # the caller's deadline was short, not the server slow
            raise
        return self._probabilities(response, len(batch))

    def _probabilities(self, response: predict_pb2.PredictResponse, batch_size: int) -> Prediction:
        c = self.contract
        if c.output_key not in response.outputs:
            raise ModelError(f"model {c.name!r} at {self.target} returned no {c.output_key!r} output")
        try:
            probabilities = to_ndarray(response.outputs[c.output_key]).astype(np.float32)
        except (TypeError, ValueError) as error:
            raise ModelError(f"model {c.name!r} at {self.target} returned an unreadable {c.output_key}: {error}") from None
        expected = (batch_size, len(c.labels))
        if probabilities.shape != expected:
            raise ModelError(
                f"model {c.name!r} at {self.target} returned {c.output_key} of shape {probabilities.shape}, expected {expected}"
            )
        if not np.isfinite(probabilities).all():
            raise ModelError(f"model {c.name!r} at {self.target} returned NaN or infinite {c.output_key}")
        return Prediction(probabilities=probabilities, version=response.model_spec.version.value)

    async def check(self) -> ModelHealth:
        """Is the model AVAILABLE, with the signature and label list this service expects?"""
        try:
            version = await self._available_version()
            await self._check_signature()
            await self._check_labels()
        except ModelError as error:
            return ModelHealth(ready=False, reason=str(error))
        return ModelHealth(ready=True, version=version)

    async def _available_version(self) -> int:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name=self.contract.name))
        response = await self._call(self._models.GetModelStatus, request, "GetModelStatus")
        available = [s.version for s in response.model_version_status if s.state == _AVAILABLE]
        if not available:
            states = ", ".join(
                f"v{s.version} {get_model_status_pb2.ModelVersionStatus.State.Name(s.state)}"
                for s in response.model_version_status
            )
            raise ModelError(f"model {self.contract.name!r} at {self.target} has no AVAILABLE version ({states or 'none'})")
        return max(available)

    async def _check_signature(self) -> None:
        c = self.contract
        request = get_model_metadata_pb2.GetModelMetadataRequest(model_spec=self._spec(), metadata_field=["signature_def"])
        response = await self._call(self._predict.GetModelMetadata, request, "GetModelMetadata")
        signatures = get_model_metadata_pb2.SignatureDefMap()
        if "signature_def" not in response.metadata or not response.metadata["signature_def"].Unpack(signatures):
            raise ModelError(f"model {c.name!r} at {self.target} returned no signature_def metadata")
        if c.signature_name not in signatures.signature_def:
            raise ModelError(
                f"model {c.name!r} has no signature {c.signature_name!r} (has: {', '.join(signatures.signature_def)})"
            )
        signature = signatures.signature_def[c.signature_name]
        _expect_tensor(c.name, "input", signature.inputs, c.input_key, types_pb2.DT_FLOAT, (-1, *c.input_shape))
        _expect_tensor(c.name, "output", signature.outputs, c.output_key, types_pb2.DT_FLOAT, (-1, len(c.labels)))
        _expect_tensor(c.name, "output", signature.outputs, c.labels_key, types_pb2.DT_STRING, (-1, len(c.labels)))

    async def _check_labels(self) -> None:
        c = self.contract
        request = predict_pb2.PredictRequest(
            model_spec=self._spec(),
            inputs={c.input_key: to_tensor_proto(np.zeros((1, *c.input_shape), dtype=np.float32))},
            output_filter=[c.labels_key],
        )
        response = await self._call(self._predict.Predict, request, "Predict")
        if c.labels_key not in response.outputs:
            raise ModelError(f"model {c.name!r} at {self.target} returned no {c.labels_key!r} output")
        try:
            labels = tuple(to_ndarray(response.outputs[c.labels_key]).reshape(-1).tolist())
        except (TypeError, ValueError) as error:
            raise ModelError(f"model {c.name!r} at {self.target} returned unreadable {c.labels_key}: {error}") from None
        if labels != c.labels:
            raise ModelError(f"model {c.name!r} at {self.target} has labels {labels}, expected {c.labels}")

    async def _call(self, method, request, name: str, timeout_s: float | None = None):
        try:
            return await method(request, timeout=timeout_s or self.timeout_s)
        except grpc.aio.AioRpcError as error:
            raise ModelError(
                f"{name} on model {self.contract.name!r} at {self.target} failed: {error.code().name}: {error.details()}",
                code=error.code(),
            ) from None

    async def close(self) -> None:
        await self._channel.close()


def _expect_tensor(model: str, kind: str, infos, key: str, dtype: int, shape: tuple[int, ...]) -> None:
    if key not in infos:
        raise ModelError(f"model {model!r} signature has no {kind} {key!r} (has: {', '.join(infos)})")
    info = infos[key]
    got_shape = tuple(d.size for d in info.tensor_shape.dim)
    if info.dtype != dtype or info.tensor_shape.unknown_rank or got_shape != shape:
        raise ModelError(
            f"model {model!r} {kind} {key!r} is {types_pb2.DataType.Name(info.dtype)}{list(got_shape)}, "
            f"expected {types_pb2.DataType.Name(dtype)}{list(shape)}"
        )
