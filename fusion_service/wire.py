"""Requests whose bytes are not a valid protobuf message get INVALID_ARGUMENT, like any other malformed
input, instead of gRPC's default UNKNOWN ("Exception deserializing request")."""

from __future__ import annotations

from typing import AsyncIterator, Callable

import grpc
from google.protobuf.message import DecodeError

from fusion_service.decoding import InvalidInput

SERVICE_PREFIX = "/emotion.v1.EmotionFusion/"


class Undecodable:
    """Stands in for a request message that could not be parsed."""

    def __init__(self, type_name: str, size: int):
        self.message = (
            f"request is not a valid {type_name} message ({size} bytes that do not parse as protobuf); "
            "build it with stubs generated from protos/emotion/v1/emotion.proto"
        )


def _tolerant(deserializer: Callable[[bytes], object], type_name: str) -> Callable[[bytes], object]:
    def parse(data: bytes) -> object:
        try:
            return deserializer(data)
        except DecodeError:
            return Undecodable(type_name, len(data))

    return parse


async def _checked(requests: AsyncIterator) -> AsyncIterator:
    async for request in requests:
        if isinstance(request, Undecodable):
            raise InvalidInput(request.message)
        yield request


class UndecodableRequestInterceptor(grpc.aio.ServerInterceptor):
    """Wraps the EmotionFusion methods (unary Fuse, bidirectional StreamFuse): a unary call with an
    undecodable request is refused here; on a stream it surfaces as InvalidInput when the service reads it."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX) or handler.request_deserializer is None:
            return handler
        name = method[len(SERVICE_PREFIX):]
        parse = _tolerant(handler.request_deserializer, f"{name} request")

        if handler.unary_unary:
            behaviour = handler.unary_unary

            async def unary(request, context):
                if isinstance(request, Undecodable):
                    context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
                    context.set_details(request.message)
                    return None
                return await behaviour(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, request_deserializer=parse, response_serializer=handler.response_serializer
            )
        if handler.stream_stream:
            streaming = handler.stream_stream

            async def stream(requests, context):
                async for response in streaming(_checked(requests), context):
                    yield response

            return grpc.stream_stream_rpc_method_handler(
                stream, request_deserializer=parse, response_serializer=handler.response_serializer
            )
        return handler
