"""The assembled service (gRPC server, interceptors, health, reflection, model-server watch) and serve(),
which runs it until SIGTERM or SIGINT.

Health: NOT_SERVING at start-up until both model servers have answered with the expected models at
least once; after that NOT_SERVING only while neither can answer (one alone still gives answers), and
for good once shutdown begins.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from fusion_service.analysis import Analyzer, UncertaintyRule, audio_contract, video_contract
from fusion_service.auth import TokenAuthInterceptor, TokenError, load_tokens
from fusion_service.config import Settings
from fusion_service.limits import StreamLimiter, client_identity
from fusion_service.metrics import MODEL_READY
from fusion_service.model_client import ModelClient, ModelContract
from fusion_service.rpc_metrics import CallStatusInterceptor
from fusion_service.resilience import CircuitBreaker, RetryPolicy
from fusion_service.servicer import EmotionFusionServicer
from fusion_service.wire import UndecodableRequestInterceptor
from protos.emotion.v1 import emotion_pb2, emotion_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = emotion_pb2.DESCRIPTOR.services_by_name["EmotionFusion"].full_name
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


UNREADY_CHECK_INTERVAL_S = 0.2


class StartupError(Exception):
    """The service cannot start as configured; the message says what to change."""


def serving_status(ever_ready: set[str], ready_now: dict[str, bool]) -> int:
    """SERVING once every model has been ready at least once, and while at least one is ready now."""
    if not set(ready_now) <= ever_ready:
        return NOT_SERVING
    return SERVING if any(ready_now.values()) else NOT_SERVING


async def watch_models(clients: list[ModelClient], health_servicer: health.aio.HealthServicer, interval_s: float) -> None:
    """Keep health in step with the model servers (see serving_status), logging each change."""
    last: dict[str, str] = {}
    ever_ready: set[str] = set()
    while True:
        states = await asyncio.gather(*(c.check() for c in clients))
        for client, state in zip(clients, states):
            MODEL_READY.labels(client.contract.name).set(1 if state.ready else 0)
            if state.ready:
                ever_ready.add(client.contract.name)
            summary = f"ready, version {state.version}" if state.ready else f"not ready: {state.reason}"
            if last.get(client.contract.name) != summary:
                log.log(logging.INFO if state.ready else logging.WARNING, "model %r at %s %s", client.contract.name, client.target, summary)
                last[client.contract.name] = summary
        status = serving_status(ever_ready, {c.contract.name: s.ready for c, s in zip(clients, states)})
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, status)
        # While a model is missing (start-up, outage), look again soon: readiness should not wait a full interval.
        all_ready = all(state.ready for state in states)
        await asyncio.sleep(interval_s if all_ready else min(interval_s, UNREADY_CHECK_INTERVAL_S))


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as file:
        return file.read()


def model_credentials(settings: Settings) -> grpc.ChannelCredentials | None:
    """TLS (optionally mutual) to the model servers, when a CA is configured."""
    if not settings.model_tls_ca_file:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.model_tls_ca_file),
        private_key=_read(settings.model_tls_key_file),
        certificate_chain=_read(settings.model_tls_cert_file),
    )


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS for our own port, with client certificates required when a client CA is configured."""
    if not settings.tls_cert_file:
        return None
    return grpc.ssl_server_credentials(
        [(_read(settings.tls_key_file), _read(settings.tls_cert_file))],
        root_certificates=_read(settings.tls_client_ca_file),
        require_client_auth=bool(settings.tls_client_ca_file),
    )


class FusionService:
    """Everything serve() runs, with start() and stop() of its own so that tests can run it in-process.

    Construction and start() raise StartupError when the configuration cannot work.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.port = 0
        self._executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="fusion-cpu")
        self.audio_client = self._model_client(settings.audio_model_target, audio_contract(settings.audio_model_name))
        self.video_client = self._model_client(settings.video_model_target, video_contract(settings.video_model_name))
        analyzer = Analyzer(
            self.audio_client, self.video_client, self._executor, settings.max_audio_seconds, settings.face_detector,
            UncertaintyRule(settings.uncertain_below, settings.confident_above),
        )

        try:
            tokens = load_tokens(settings.auth_tokens_file, settings.auth_tokens)
        except TokenError as error:
            raise StartupError(f"authentication: {error}") from None
        # First, so that it counts the final status of every call, those the others refuse included.
        interceptors: list[grpc.aio.ServerInterceptor] = [CallStatusInterceptor()]
        if tokens:
            interceptors.append(TokenAuthInterceptor(tokens))
        interceptors.append(UndecodableRequestInterceptor())
        self.authenticating = bool(tokens)
        self._server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
            ],
        )
        self.servicer = EmotionFusionServicer(
            analyzer, settings, StreamLimiter(settings.max_streams_per_client),
            functools.partial(client_identity, by_token=self.authenticating),
        )
        emotion_pb2_grpc.add_EmotionFusionServicer_to_server(self.servicer, self._server)
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), self._server
        )
        self._watcher: asyncio.Task | None = None

    def _model_client(self, target: str, contract: ModelContract) -> ModelClient:
        s = self.settings
        return ModelClient(
            target, contract, s.predict_timeout_s, model_credentials(s),
            retry=RetryPolicy(retries=s.model_retries, initial_backoff_s=s.model_retry_backoff_s),
            breaker=CircuitBreaker(s.model_breaker_failures, s.model_breaker_open_s),
        )

    async def start(self) -> int:
        """Listen, and start watching the model servers; returns the port."""
        s = self.settings
        for name in ("", SERVICE_NAME):
            await self.health.set(name, NOT_SERVING)
        address = f"{s.host}:{s.port}"
        tls = server_credentials(s)
        try:
            self.port = self._server.add_secure_port(address, tls) if tls else self._server.add_insecure_port(address)
        except RuntimeError:
            self.port = 0
        if self.port == 0:
            raise StartupError(f"could not listen on {address}: is the port in use? Choose another with --port.")
        await self._server.start()
        log.info(
            "fusion service listening on %s:%d (%s%s; audio model at %s, video model at %s)",
            s.host, self.port, ("mutual TLS" if s.tls_client_ca_file else "TLS") if tls else "plaintext",
            ", bearer tokens required" if self.authenticating else "", s.audio_model_target, s.video_model_target,
        )
        self._watcher = asyncio.create_task(
            watch_models([self.audio_client, self.video_client], self.health, s.model_check_interval_s)
        )
        return self.port

    async def stop(self) -> None:
        """Health NOT_SERVING, streams sent a final message, new calls refused; running calls get the grace period."""
        log.info("shutting down: refusing new calls, %.1f s grace for running ones", self.settings.shutdown_grace_s)
        if self._watcher is not None:
            self._watcher.cancel()
        await self.health.enter_graceful_shutdown()
        self.servicer.close_streams()
        await self._server.stop(self.settings.shutdown_grace_s)
        await asyncio.gather(self.audio_client.close(), self.video_client.close())
        self._executor.shutdown(wait=False, cancel_futures=True)
        log.info("stopped")


async def serve(settings: Settings) -> None:
    service = FusionService(settings)
    await service.start()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await service.stop()
