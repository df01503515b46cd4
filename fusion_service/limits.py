"""Per-client limits: who a client is, and how many streams it may hold open at once.

A client is its bearer token when authentication is on (so one user behind many addresses is one
client), else the IP address it connects from (without the port: every connection has its own).
Behind a proxy that hides client addresses, turn authentication on or the proxy becomes one client.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import grpc

from fusion_service.auth import bearer_token, token_fingerprint


class LimitExceeded(Exception):
    """A client asked for more than its share; the message says which limit and how to stay under it."""


def peer_host(peer: str) -> str:
    """'ipv4:10.0.0.7:51234' -> '10.0.0.7', 'ipv6:[::1]:51234' -> '[::1]'; other kinds (unix:...) unchanged."""
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in address:
        return address.rsplit(":", 1)[0]
    return peer


def client_identity(context: grpc.aio.ServicerContext, by_token: bool) -> str:
    if by_token:
        token = bearer_token(context.invocation_metadata())
        if token is not None:
            return "token:" + token_fingerprint(token)
    return "address:" + peer_host(context.peer() or "unknown")


class StreamLimiter:
    """Counts open streams per client; runs on the event loop only, so needs no lock."""

    def __init__(self, per_client: int):
        self.per_client = per_client  # 0: no limit
        self._open: Counter[str] = Counter()

    def open_streams(self, client: str) -> int:
        return self._open[client]

    @contextmanager
    def stream(self, client: str) -> Iterator[None]:
        """Hold one of the client's stream slots; raises LimitExceeded when it has none left."""
        if self.per_client and self._open[client] >= self.per_client:
            raise LimitExceeded(
                f"this client already has {self._open[client]} streams open, the most allowed "
                f"(--max-streams-per-client={self.per_client}); close one before opening another"
            )
        self._open[client] += 1
        try:
            yield
        finally:
            self._open[client] -= 1
            if not self._open[client]:
                del self._open[client]
