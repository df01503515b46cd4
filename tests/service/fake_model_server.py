"""An in-process stand-in for a TF Serving model server (grpc.aio, no TensorFlow) that a test can make
answer, fail or hang, to see how the fusion service copes."""

from __future__ import annotations

import asyncio
import time

import grpc
import numpy as np

from fusion_service.model_client import ModelContract
from fusion_service.tensors import to_tensor_proto
from protos.emotion.v1.constants import LABELS
from protos.tfserving import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    meta_graph_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    tensor_shape_pb2,
    types_pb2,
)

VERSION = 3


def _tensor_info(dtype: int, shape: tuple[int, ...]) -> meta_graph_pb2.TensorInfo:
    dims = [tensor_shape_pb2.TensorShapeProto.Dim(size=s) for s in shape]
    return meta_graph_pb2.TensorInfo(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=dims))


class FakeModelServer(prediction_service_pb2_grpc.PredictionServiceServicer, model_service_pb2_grpc.ModelServiceServicer):
    """Serves one model that follows `contract`.

    mode "answer": every row gets `probabilities`; "unavailable": every call fails with UNAVAILABLE;
    "hang": Predict calls for scores never answer (status and label checks still do), and
    `predict_cancelled` is set when the caller gives up on one. `unavailable_next` fails that many
    Predict calls for scores with UNAVAILABLE before answering again.
    """

    def __init__(self, contract: ModelContract, probabilities: np.ndarray, version: int = VERSION):
        self.contract = contract
        self.version = version
        self.probabilities = np.asarray(probabilities, dtype=np.float32)
        self.mode = "answer"
        self.unavailable_next = 0
        self.score_calls = 0  # Predict calls for scores that reached this server
        self.score_call_times: list[float] = []  # when each of them arrived (time.monotonic())
        self.last_time_remaining: float | None = None  # the deadline the last of them came with
        self.predict_cancelled = asyncio.Event()
        self._server: grpc.aio.Server | None = None
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        self._server = grpc.aio.server()
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self, self._server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port(f"127.0.0.1:{port}")
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop(0)

    async def _refuse_if_unavailable(self, context) -> None:
        if self.mode == "unavailable":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fake model server is down")

    async def GetModelStatus(self, request, context):
        await self._refuse_if_unavailable(context)
        status = get_model_status_pb2.ModelVersionStatus(
            version=self.version, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE
        )
        return get_model_status_pb2.GetModelStatusResponse(model_version_status=[status])

    async def GetModelMetadata(self, request, context):
        await self._refuse_if_unavailable(context)
        c = self.contract
        signature = meta_graph_pb2.SignatureDef(
            inputs={c.input_key: _tensor_info(types_pb2.DT_FLOAT, (-1, *c.input_shape))},
            outputs={
                c.output_key: _tensor_info(types_pb2.DT_FLOAT, (-1, len(LABELS))),
                c.labels_key: _tensor_info(types_pb2.DT_STRING, (-1, len(LABELS))),
            },
        )
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=request.model_spec)
        response.metadata["signature_def"].Pack(get_model_metadata_pb2.SignatureDefMap(signature_def={c.signature_name: signature}))
        return response

    async def Predict(self, request, context):
        await self._refuse_if_unavailable(context)
        c = self.contract
        rows = request.inputs[c.input_key].tensor_shape.dim[0].size
        response = predict_pb2.PredictResponse(model_spec=request.model_spec)
        response.model_spec.version.value = self.version
        if c.labels_key in request.output_filter:
            response.outputs[c.labels_key].CopyFrom(to_tensor_proto(np.array([list(LABELS)] * rows, dtype=object)))
            return response
        self.score_calls += 1
        self.score_call_times.append(time.monotonic())
        self.last_time_remaining = context.time_remaining()
        if self.unavailable_next > 0:
            self.unavailable_next -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "fake model server hiccup")
        if self.mode == "hang":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.predict_cancelled.set()
                raise
        response.outputs[c.output_key].CopyFrom(to_tensor_proto(np.tile(self.probabilities, (rows, 1))))
        return response
