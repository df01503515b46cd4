"""How the client reaches the fusion service: target, TLS and bearer token, shared by every command."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import grpc

DEFAULT_TARGET = "localhost:50051"
# Reconnect quickly once a restarted service is back, instead of gRPC's default of up to two minutes.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
]


# Errors that retrying cannot fix: the user has to change something.
FATAL_CODES = {
    grpc.StatusCode.INVALID_ARGUMENT: "the service refused our input",
    grpc.StatusCode.UNAUTHENTICATED: "the service wants credentials: check --token",
    grpc.StatusCode.PERMISSION_DENIED: "the token is not allowed to use the service",
    grpc.StatusCode.UNIMPLEMENTED: "this is not an emotion fusion service (or it is too old): check --target",
}


class ServiceUnreachable(RuntimeError):
    """The service could not be reached; the message says what to check."""


@dataclass(frozen=True)
class Connection:
    target: str = DEFAULT_TARGET
    tls: bool = False
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    token: str | None = None

    def open_channel(self) -> grpc.Channel:
        if not self.uses_tls:
            return grpc.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
        return grpc.secure_channel(self.target, self._credentials(), options=_CHANNEL_OPTIONS)

    def open_aio_channel(self) -> grpc.aio.Channel:
        """The same channel for asyncio code (the web gateway)."""
        if not self.uses_tls:
            return grpc.aio.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(self.target, self._credentials(), options=_CHANNEL_OPTIONS)

    def _credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_cert),
            private_key=_read(self.client_key),
            certificate_chain=_read(self.client_cert),
        )

    @property
    def uses_tls(self) -> bool:
        return self.tls or any((self.ca_cert, self.client_cert, self.client_key))

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """Call metadata: the bearer token, when one was given."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path else None


def wait_until_ready(channel: grpc.Channel, target: str, timeout_s: float) -> None:
    """Raise ServiceUnreachable with advice when the service does not accept a connection in time."""
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout_s)
    except grpc.FutureTimeoutError:
        raise ServiceUnreachable(
            f"could not connect to the fusion service at {target} within {timeout_s:g} s: start it with "
            "`make run`, or point --target (or EMOTION_TARGET) at where it runs"
        ) from None


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--target", default=os.environ.get("EMOTION_TARGET", DEFAULT_TARGET),
        help="host:port of the fusion service (default: $EMOTION_TARGET or %(default)s)",
    )
    group.add_argument("--tls", action="store_true", help="connect with TLS (system root certificates unless --ca-cert)")
    group.add_argument("--ca-cert", type=Path, help="PEM file of the certificate authority that signed the service's certificate")
    group.add_argument("--client-cert", type=Path, help="PEM client certificate, for mutual TLS (with --client-key)")
    group.add_argument("--client-key", type=Path, help="PEM private key of --client-cert")
    group.add_argument(
        "--token", default=os.environ.get("EMOTION_TOKEN"),
        help="sent as `authorization: Bearer TOKEN` (default: $EMOTION_TOKEN, which keeps it out of the process list)",
    )


def connection_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Connection:
    if (args.client_cert is None) != (args.client_key is None):
        parser.error("--client-cert and --client-key go together: give both, or neither")
    for flag in ("ca_cert", "client_cert", "client_key"):
        path = getattr(args, flag)
        if path is not None and not path.is_file():
            parser.error(f"--{flag.replace('_', '-')} {path}: no such file")
    return Connection(args.target, args.tls, args.ca_cert, args.client_cert, args.client_key, args.token)


class Backoff:
    """Waits between reconnect attempts: doubling from `initial_s` up to `max_s`, reset after a success."""

    def __init__(self, initial_s: float = 0.5, max_s: float = 5.0):
        self.initial_s = initial_s
        self.max_s = max_s
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self.max_s, self.initial_s * 2 ** self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0

