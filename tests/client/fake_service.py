"""An in-process stand-in for the fusion service that records what clients send (metadata, messages)."""

from __future__ import annotations

from concurrent import futures

import grpc

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc


class RecordingFusion(emotion_pb2_grpc.EmotionFusionServicer):
    def __init__(self, refuse_with: grpc.StatusCode | None = None):
        self.metadata: list[dict[str, str]] = []
        self.refuse_with = refuse_with

    def Fuse(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        if self.refuse_with:
            context.abort(self.refuse_with, "refused by the fake service")
        return pb.FuseResponse(top_emotion="happy")

    def StreamFuse(self, request_iterator, context):
        self.metadata.append(dict(context.invocation_metadata()))
        if self.refuse_with:
            context.abort(self.refuse_with, "refused by the fake service")
        yield from ()


def serve(servicer: RecordingFusion, credentials: grpc.ServerCredentials | None = None) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    emotion_pb2_grpc.add_EmotionFusionServicer_to_server(servicer, server)
    address = "localhost:0"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    server.start()
    return server, port
