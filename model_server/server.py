"""Start-up and shut-down of the development model server.

Like tensorflow_model_server, it loads the newest version of every model before it opens its port,
so a client that can connect finds the models AVAILABLE; it fails to start if one does not load.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass

import grpc

from model_server.batching import BatchingOptions, BatchScheduler
from model_server.config import ModelConfig
from model_server.config_reload import ConfigFilePoller
from model_server.errors import ServingError
from model_server.loader import AUTO_RUNTIME, SessionSettings, load_servable
from model_server.manager import ModelManager
from model_server.servicer import handlers
from model_server.source import FileSystemSource

log = logging.getLogger(__name__)

# tensorflow_model_server accepts messages of any size (SetMaxMessageSize(INT_MAX)).
_UNLIMITED_MESSAGES = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
_SHUTDOWN_GRACE_SECONDS = 5.0
# TF Serving's ServerCore::Options::num_initial_load_threads: the models it starts with load side by side.
_INITIAL_LOAD_THREADS = 4 * (os.cpu_count() or 1)


class StartupError(RuntimeError):
    """The server could not start; the message says why."""


@dataclass(frozen=True)
class ServerOptions:
    port: int
    models: Sequence[ModelConfig]
    file_system_poll_wait_seconds: float = 1.0
    model_config_file: str = ""  # where `models` came from; re-read when the poll wait below is positive
    model_config_file_poll_wait_seconds: float = 0.0
    enable_model_warmup: bool = True
    grpc_max_threads: int = 8
    credentials: grpc.ServerCredentials | None = None  # TLS (--ssl_config_file); None: plaintext
    session: SessionSettings | None = None  # what a version that runs on TensorFlow configures its Session with
    batching: BatchingOptions | None = None  # --enable_batching; None: each Predict runs alone
    predict_runtime: str = AUTO_RUNTIME  # --predict_runtime: LiteRT where a version has a conversion, or TensorFlow
    litert_threads: int = 1  # threads of each LiteRT interpreter (--tensorflow_intra_op_parallelism; 0: LiteRT's)


def serve(options: ServerOptions, stopped: threading.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT (or until `stopped` is set), then stop gracefully."""
    stopped = stopped or threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda received, frame: stopped.set())

    batch_scheduler = None if options.batching is None else BatchScheduler(options.batching)
    manager = ModelManager(functools.partial(
        load_servable, enable_warmup=options.enable_model_warmup, session=options.session,
        batch_scheduler=batch_scheduler, runtime=options.predict_runtime, litert_threads=options.litert_threads,
    ))
    source = FileSystemSource(options.models, options.file_system_poll_wait_seconds, manager.set_aspired_versions)
    source.poll(threads=_INITIAL_LOAD_THREADS)
    source.start()
    poller = None
    if options.model_config_file and options.model_config_file_poll_wait_seconds > 0:

        def apply(models: list[ModelConfig]) -> None:
            source.set_models(models)
            source.poll()

        poller = ConfigFilePoller(
            options.model_config_file, options.model_config_file_poll_wait_seconds, options.models, apply
        )
        poller.start()
    try:
        try:
            if not manager.wait_until_available((model.name for model in options.models), stopped):
                return
        except ServingError as error:
            raise StartupError(error.message) from None
        server = _start_grpc(manager, options)
        stopped.wait()
        log.info("Stopping: finishing requests in flight (at most %.0f s)", _SHUTDOWN_GRACE_SECONDS)
        server.stop(_SHUTDOWN_GRACE_SECONDS).wait()
    finally:
        if poller is not None:
            poller.stop()
        source.stop()
        if batch_scheduler is not None:
            batch_scheduler.stop()
    log.info("Server stopped")


def _start_grpc(manager: ModelManager, options: ServerOptions) -> grpc.Server:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=options.grpc_max_threads, thread_name_prefix="grpc"),
        options=_UNLIMITED_MESSAGES,
    )
    server.add_generic_rpc_handlers(handlers(manager))
    address = f"0.0.0.0:{options.port}"
    try:
        if options.credentials is None:
            server.add_insecure_port(address)
        else:
            server.add_secure_port(address, options.credentials)
    except RuntimeError as error:
        raise StartupError(f"Failed to BuildAndStart gRPC server: cannot listen on {address} ({error})") from None
    server.start()
    log.info("Running gRPC ModelServer at %s%s ...", address, "" if options.credentials is None else " (TLS)")
    return server
