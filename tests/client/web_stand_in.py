"""A stand-in fusion service and the web gateway in front of it, in one event loop, for gateway tests."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import grpc
from aiohttp.test_utils import TestServer

from capture_client.connection import Connection
from capture_client.web.gateway import Gateway, GatewayConfig, Limits
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc


class EchoFusion(emotion_pb2_grpc.EmotionFusionServicer):
    """Answers each frame with a result naming its sequence; records every stream's requests."""

    def __init__(self, end_after: int | None = None, refuse_with: grpc.StatusCode | None = None):
        self.streams: list[list[pb.StreamRequest]] = []
        self.end_after = end_after
        self.refuse_with = refuse_with

    async def StreamFuse(self, request_iterator, context) -> AsyncIterator[pb.StreamResponse]:
        if self.refuse_with:
            await context.abort(self.refuse_with, "refused by the stand-in")
        received: list[pb.StreamRequest] = []
        self.streams.append(received)
        async for request in request_iterator:
            received.append(request)
            if request.HasField("frame"):
                final = self.end_after is not None and len(self.streams) == 1 and request.frame.sequence >= self.end_after
                yield pb.StreamResponse(frame_sequence=request.frame.sequence, final=final,
                                        result=pb.FuseResponse(top_emotion="happy", top_probability=0.8))
                if final:
                    return


class Harness:
    def __init__(self, fusion: EchoFusion, limits: Limits = Limits()):
        self.fusion = fusion
        self.limits = limits

    async def __aenter__(self) -> "Harness":
        self.grpc_server = grpc.aio.server()
        emotion_pb2_grpc.add_EmotionFusionServicer_to_server(self.fusion, self.grpc_server)
        port = self.grpc_server.add_insecure_port("127.0.0.1:0")
        await self.grpc_server.start()
        gateway = Gateway(GatewayConfig(Connection(target=f"127.0.0.1:{port}"), self.limits))
        self.http = TestServer(gateway.app(), host="127.0.0.1")
        await self.http.start_server()
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *_) -> None:
        await self.session.close()
        await self.http.close()
        await self.grpc_server.stop(None)

    @property
    def ws_url(self) -> str:
        return str(self.http.make_url("/ws")).replace("http://", "ws://")

    async def open(self, origin: str | None = "same", settings: dict | None = None) -> aiohttp.ClientWebSocketResponse:
        headers = {}
        if origin == "same":
            headers["Origin"] = f"http://{self.http.host}:{self.http.port}"
        elif origin is not None:
            headers["Origin"] = origin
        ws = await self.session.ws_connect(self.http.make_url("/ws"), headers=headers)
        await ws.send_str(json.dumps(settings or {"type": "config", "mode": "both", "result_rate_hz": 10}))
        return ws
