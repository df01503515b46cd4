"""One thread that keeps a StreamFuse call open, reopening it with back-off whenever it ends."""

from __future__ import annotations

import logging
import threading

import grpc

from capture_client.background import BackgroundLoop
from capture_client.connection import FATAL_CODES, Backoff, Connection
from capture_client.outbox import Outbox
from capture_client.state import LiveState
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc


class StreamClient(BackgroundLoop):
    """Keeps one StreamFuse call open, reopening it with back-off whenever it ends."""

    def __init__(
        self, connection: Connection, config: pb.StreamConfig, outbox: Outbox, state: LiveState,
        backoff: Backoff | None = None, connect_timeout_s: float = 3.0,
    ):
        super().__init__("stream", join_timeout_s=10)
        self._connection = connection
        self._config = config
        self._outbox = outbox
        self._state = state
        self._backoff = backoff or Backoff()
        self._connect_timeout_s = connect_timeout_s
        self._call: grpc.Call | None = None
        self.error: str | None = None  # set when the client gave up

    def _interrupt(self) -> None:
        call = self._call
        if call is not None:
            call.cancel()

    def _run(self) -> None:
        target = self._connection.target
        while not self._stopping.is_set():
            reason = self._stream_once()
            if self._stopping.is_set() or self.error:
                return
            delay = self._backoff.next_delay()
            self._state.set_connection(
                "reconnecting", f"{reason}; reconnecting to {target} in {delay:.1f} s (attempt {self._backoff.attempt})",
                logging.WARNING,
            )
            self._stopping.wait(delay)

    def _stream_once(self) -> str:
        """Run one call to its end; returns why it ended."""
        target = self._connection.target
        done = threading.Event()
        with self._connection.open_channel() as channel:
            try:
                grpc.channel_ready_future(channel).result(timeout=self._connect_timeout_s)
            except grpc.FutureTimeoutError:
                return f"the service at {target} is not reachable"
            self._state.new_stream()
            self._state.set_connection("connected", f"connected to {target}")
            stub = emotion_pb2_grpc.EmotionFusionStub(channel)
            self._call = stub.StreamFuse(self._outbox.requests(self._config, done), metadata=self._connection.metadata)
            if self._stopping.is_set():  # stop() came before the call existed to be cancelled
                self._call.cancel()
            try:
                for response in self._call:
                    self._state.on_response(response)
                    self._backoff.reset()
                    if response.final:
                        return "the service is shutting down"
                return "the service ended the stream"
            except grpc.RpcError as error:
                code = error.code()
                if code in FATAL_CODES:
                    self.error = f"{FATAL_CODES[code]} ({code.name}: {error.details()})"
                    self._state.set_connection("failed", self.error, logging.ERROR)
                return f"lost the service ({code.name}: {error.details()})"
            finally:
                done.set()
                self._call.cancel()
                self._call = None
