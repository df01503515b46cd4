"""Every call's final status in `fusion_rpc_calls_total`, recorded in one place: a server interceptor in
front of all the others, so refusals by interceptors (authentication, undecodable requests), aborts,
unexpected exceptions, deadlines and cancellations are all counted, each under the code the caller gets."""

from __future__ import annotations

import asyncio
import inspect
from contextlib import aclosing
from typing import AsyncIterator, Awaitable, Callable

import grpc

from fusion_service.metrics import RPC_CALLS

Record = Callable[[grpc.aio.ServicerContext, "BaseException | None"], None]


def final_code(context: grpc.aio.ServicerContext, error: BaseException | None = None) -> grpc.StatusCode:
    """The status a call ends with after its handler returned (error None) or raised `error`, as gRPC's
    asyncio server sends it."""
    if context.time_remaining() == 0:
        # Past the caller's deadline the caller has DEADLINE_EXCEEDED, whatever the handler did after it.
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        # The server stops a handler this way when the caller cancels.
        return grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(error, grpc.aio.AbortError):
        return code
    if error is not None:
        # An exception ends the call UNKNOWN unless the handler had set a code first.
        return code if code not in (None, grpc.StatusCode.OK) else grpc.StatusCode.UNKNOWN
    return code or grpc.StatusCode.OK


class CallStatusInterceptor(grpc.aio.ServerInterceptor):
    """Wraps each asynchronous handler (unary or streaming, coroutine or async generator) to count the
    status it finishes with; put it first in the server's interceptors so that it sees every call."""

    async def intercept_service(self, continuation, handler_call_details) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")

        def record(context: grpc.aio.ServicerContext, error: BaseException | None) -> None:
            RPC_CALLS.labels(service, method, final_code(context, error).name).inc()

        kinds = (
            (handler.unary_unary, grpc.unary_unary_rpc_method_handler),
            (handler.unary_stream, grpc.unary_stream_rpc_method_handler),
            (handler.stream_unary, grpc.stream_unary_rpc_method_handler),
            (handler.stream_stream, grpc.stream_stream_rpc_method_handler),
        )
        behaviour, make_handler = next((b, make) for b, make in kinds if b is not None)
        counting = _counting_generator if inspect.isasyncgenfunction(behaviour) else _counting_coroutine
        wrapped = counting(behaviour, record)
        return make_handler(
            wrapped, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
        )


def _counting_coroutine(behaviour: Callable[..., Awaitable], record: Record) -> Callable[..., Awaitable]:
    async def counted(request, context: grpc.aio.ServicerContext):
        try:
            result = await behaviour(request, context)
        except BaseException as error:
            record(context, error)
            raise
        record(context, None)
        return result

    return counted


def _counting_generator(behaviour: Callable[..., AsyncIterator], record: Record) -> Callable[..., AsyncIterator]:
    async def counted(request, context: grpc.aio.ServicerContext):
        try:
            async with aclosing(behaviour(request, context)) as responses:
                async for response in responses:
                    yield response
        except BaseException as error:
            # GeneratorExit: the server stopped reading this stream (cancelled while sending a response).
            record(context, error)
            raise
        record(context, None)

    return counted
