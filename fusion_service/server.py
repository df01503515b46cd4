"""serve(): the gRPC server with health, reflection, metrics and the model-server watch."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from fusion_service.analysis import Analyzer, audio_contract, video_contract
from fusion_service.config import Settings
from fusion_service.metrics import MODEL_READY
from fusion_service.model_client import ModelClient
from fusion_service.servicer import EmotionFusionServicer
from protos.emotion.v1 import emotion_pb2, emotion_pb2_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = emotion_pb2.DESCRIPTOR.services_by_name["EmotionFusion"].full_name


async def watch_models(clients: list[ModelClient], health_servicer: health.aio.HealthServicer, interval_s: float) -> None:
    """Keep health in step with the model servers: SERVING only while both answer with the expected models."""
    last: dict[str, str] = {}
    while True:
        states = await asyncio.gather(*(c.check() for c in clients))
        for client, state in zip(clients, states):
            MODEL_READY.labels(client.contract.name).set(1 if state.ready else 0)
            summary = f"ready, version {state.version}" if state.ready else f"not ready: {state.reason}"
            if last.get(client.contract.name) != summary:
                log.log(logging.INFO if state.ready else logging.WARNING, "model %r at %s %s", client.contract.name, client.target, summary)
                last[client.contract.name] = summary
        status = health_pb2.HealthCheckResponse.SERVING if all(s.ready for s in states) else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, status)
        await asyncio.sleep(interval_s)


def _read(path: str) -> bytes | None:
    return open(path, "rb").read() if path else None


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


async def serve(settings: Settings) -> None:
    executor = ThreadPoolExecutor(settings.worker_threads, thread_name_prefix="fusion-cpu")
    credentials = model_credentials(settings)
    audio_client = ModelClient(
        settings.audio_model_target, audio_contract(settings.audio_model_name), settings.predict_timeout_s, credentials
    )
    video_client = ModelClient(
        settings.video_model_target, video_contract(settings.video_model_name), settings.predict_timeout_s, credentials
    )
    analyzer = Analyzer(audio_client, video_client, executor, settings.max_audio_seconds)

    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
        ]
    )
    emotion_pb2_grpc.add_EmotionFusionServicer_to_server(EmotionFusionServicer(analyzer, settings), server)
    health_servicer = health.aio.HealthServicer()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server
    )
    address = f"{settings.host}:{settings.port}"
    tls = server_credentials(settings)
    port = server.add_secure_port(address, tls) if tls else server.add_insecure_port(address)
    if port == 0:
        raise SystemExit(f"could not listen on {settings.host}:{settings.port}: is the port in use? Choose another with --port.")
    await server.start()
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
    log.info(
        "fusion service listening on %s:%d (%s; audio model at %s, video model at %s)",
        settings.host, port, ("mutual TLS" if settings.tls_client_ca_file else "TLS") if tls else "plaintext",
        settings.audio_model_target, settings.video_model_target,
    )
    watcher = asyncio.create_task(watch_models([audio_client, video_client], health_servicer, settings.model_check_interval_s))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("shutting down: refusing new calls, %.1f s grace for running ones", settings.shutdown_grace_s)
    watcher.cancel()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.shutdown_grace_s)
    await asyncio.gather(audio_client.close(), video_client.close())
    executor.shutdown(wait=False, cancel_futures=True)
    log.info("stopped")
