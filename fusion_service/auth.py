"""Optional bearer-token authentication, as a server interceptor in front of every method except health
and reflection (probes and tools must reach them without a token)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import grpc

OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
_SCHEME = "bearer "


class TokenError(ValueError):
    """The configured tokens are unusable; the message says why without showing them."""


def load_tokens(tokens_file: str = "", tokens: str = "") -> frozenset[str]:
    """Accepted tokens: one per line of `tokens_file` (blank lines and # comments skipped), and the
    comma-separated `tokens`. Empty when neither is given: authentication is off."""
    found: list[str] = []
    if tokens_file:
        lines = [line.strip() for line in Path(tokens_file).read_text().splitlines()]
        from_file = [line for line in lines if line and not line.startswith("#")]
        if not from_file:
            raise TokenError(f"{tokens_file} holds no token; write one token per line")
        found += from_file
    found += [token.strip() for token in tokens.split(",") if token.strip()]
    for number, token in enumerate(found, 1):
        if any(c.isspace() or not c.isprintable() for c in token):
            raise TokenError(f"token number {number} holds a space or an unprintable character; tokens are sent in a header")
    return frozenset(found)


def bearer_token(metadata) -> str | None:
    """The token of an `authorization: Bearer TOKEN` entry of the call's metadata, if there is one."""
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value[: len(_SCHEME)].lower() == _SCHEME:
            return value[len(_SCHEME):].strip()
    return None


def token_fingerprint(token: str) -> str:
    """A short stable name for a token that does not reveal it (for limits and logs)."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, tokens: frozenset[str]):
        if not tokens:
            raise TokenError("authentication needs at least one token")
        self._tokens = [token.encode() for token in tokens]

    def accepts(self, token: str | None) -> bool:
        if token is None:
            return False
        given = token.encode()
        # Compared with every token without stopping early: the time taken tells nothing about the tokens.
        matches = [hmac.compare_digest(given, accepted) for accepted in self._tokens]
        return any(matches)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        if self.accepts(bearer_token(handler_call_details.invocation_metadata)):
            return handler
        return refusing_handler(
            handler,
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or invalid bearer token: send call metadata `authorization: Bearer <token>`",
        )


def refusing_handler(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same kind as `handler` that ends every call with `code` and `message` (without
    context.abort(), which would keep the request in memory until the cyclic garbage collector runs)."""

    async def refuse(_request, context: grpc.aio.ServicerContext) -> None:
        context.set_code(code)
        context.set_details(message)

    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, **serializers)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse, **serializers)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, **serializers)
    return grpc.stream_stream_rpc_method_handler(refuse, **serializers)
