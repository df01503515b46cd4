"""Service configuration: command-line flags, each with an environment variable as its default.

Precedence: flag > environment variable > built-in default. `python -m fusion_service --help`
lists every option; the README's table is the same list.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields

from fusion_service.features.faces.names import DEFAULT_DETECTOR, DETECTOR_NAMES
from fusion_service.fusion import check_weights
from fusion_service.fusion_methods import DEFAULT_METHOD, METHODS
from fusion_service.resilience import MAX_RETRIES, MIN_BACKOFF_S
from protos.emotion.v1.smoothing import DEFAULT_TIME_CONSTANT_S, MAX_TIME_CONSTANT_S
from protos.emotion.v1.uncertainty import DEFAULT_CONFIDENT_ABOVE, DEFAULT_UNCERTAIN_BELOW


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 50051
    audio_model_target: str = "localhost:8500"
    video_model_target: str = "localhost:8501"
    audio_model_name: str = "audio"
    video_model_name: str = "video"
    audio_weight: float = 0.3
    video_weight: float = 0.7
    fusion_method: str = DEFAULT_METHOD
    uncertain_below: float = DEFAULT_UNCERTAIN_BELOW
    confident_above: float = DEFAULT_CONFIDENT_ABOVE
    smoothing_time_constant_s: float = DEFAULT_TIME_CONSTANT_S
    predict_timeout_s: float = 1.0
    max_audio_seconds: float = 10.0
    stream_result_rate_hz: float = 5.0
    max_message_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    model_check_interval_s: float = 2.0
    metrics_port: int = 9464
    worker_threads: int = 2
    face_detector: str = DEFAULT_DETECTOR
    shutdown_grace_s: float = 5.0
    model_retries: int = 2
    model_retry_backoff_s: float = 0.05
    model_breaker_failures: int = 5
    model_breaker_open_s: float = 5.0
    max_streams_per_client: int = 8
    auth_tokens_file: str = ""
    auth_tokens: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    model_tls_ca_file: str = ""
    model_tls_cert_file: str = ""
    model_tls_key_file: str = ""
    log_level: str = "INFO"


_HELP = {
    "host": "address to listen on",
    "port": "gRPC port of the fusion service (0: any free port, logged at start)",
    "audio_model_target": "host:port of the model server (TF Serving gRPC API) hosting the audio model",
    "video_model_target": "host:port of the model server hosting the video model",
    "audio_model_name": "model name of the audio model on its server",
    "video_model_name": "model name of the video model on its server",
    "audio_weight": "default fusion weight of the voice (renormalised over the modalities used)",
    "video_weight": "default fusion weight of the face",
    "fusion_method": f"default fusion method, one of: {', '.join(METHODS)} (a request may name its own; one that "
    "sets weights and no method gets weighted_sum)",
    "uncertain_below": "fused confidence (top probability) under which an answer is marked uncertain (LOW_CONFIDENCE)",
    "confident_above": "confidence at which a modality counts as sure: both sure of different emotions marks the answer "
    "uncertain (MODALITIES_DISAGREE)",
    "smoothing_time_constant_s": "default time constant of a stream's smoothing of the fused answer, in seconds "
    "(0: none; a stream may set its own)",
    "predict_timeout_s": "deadline of one Predict call to a model server",
    "max_audio_seconds": "longest audio a Fuse call may carry; longer input is refused",
    "stream_result_rate_hz": "default results per second on a stream",
    "max_message_bytes": "largest request message accepted",
    "max_image_pixels": "largest image (width x height) accepted",
    "model_check_interval_s": "how often the model servers' status is re-checked for health",
    "metrics_port": "HTTP port of the Prometheus /metrics endpoint (0 turns it off)",
    "worker_threads": "threads for feature extraction and face detection",
    "face_detector": "face detector: blazeface (MediaPipe's short-range model over passes from the whole frame down "
    "to 40 px faces, 3% of wider frames; the search ends at the first pass with a confirmed face), "
    "blazeface-every-scale (every pass always: small faces beside a large one too) or haar (OpenCV's frontal-face "
    "cascade: faces from a fifth of the frame)",
    "shutdown_grace_s": "seconds running calls get to finish on SIGTERM; streams get a final message first",
    "model_retries": "retries (0 to 4) of a model-server call that failed with UNAVAILABLE, by gRPC's retry policy "
    "(jittered exponential back-off, throttled while most calls fail, within the call's deadline)",
    "model_retry_backoff_s": "back-off before the first retry (at least 0.01); doubles with each further retry",
    "model_breaker_failures": "failed calls in a row after which a model server is skipped (circuit breaker)",
    "model_breaker_open_s": "how long a failing model server is skipped before one trial call",
    "max_streams_per_client": "streams one client may have open at once (client: its token with authentication, "
    "else its IP address; 0: no limit)",
    "auth_tokens_file": "file of accepted bearer tokens, one per line: calls must carry `authorization: Bearer TOKEN`",
    "auth_tokens": "accepted bearer tokens, comma-separated (set it in the environment: a flag shows in the process "
    "list); with --auth-tokens-file or alone, turns authentication on",
    "tls_cert_file": "PEM certificate chain: serve TLS instead of plaintext (with --tls-key-file)",
    "tls_key_file": "PEM private key of --tls-cert-file",
    "tls_client_ca_file": "PEM CA bundle: require client certificates signed by it (mutual TLS)",
    "model_tls_ca_file": "PEM CA bundle: reach the model servers over TLS, trusting it",
    "model_tls_cert_file": "PEM client certificate for mutual TLS to the model servers",
    "model_tls_key_file": "PEM private key of --model-tls-cert-file",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
}


def env_name(field_name: str) -> str:
    return "FUSION_" + field_name.upper()


def parse_settings(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> Settings:
    """Build Settings from flags, falling back to FUSION_* environment variables."""
    environ = dict(os.environ if environ is None else environ)
    parser = argparse.ArgumentParser(
        prog="python -m fusion_service",
        description="Emotion fusion service: voice + face emotion recognition over gRPC.",
    )
    for f in fields(Settings):
        kind = type(f.default)
        default = f.default
        if env_name(f.name) in environ:
            raw = environ[env_name(f.name)]
            try:
                default = kind(raw)
            except ValueError:
                parser.error(f"environment variable {env_name(f.name)}={raw!r} is not a valid {kind.__name__}")
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            type=kind,
            default=default,
            # argparse %-formats help texts: a literal "%" must reach it doubled.
            help=f"{_HELP[f.name]} (env {env_name(f.name)}; default {f.default})".replace("%", "%%"),
        )
    args = parser.parse_args(argv)
    settings = Settings(**vars(args))
    problems = validate(settings)
    if problems:
        parser.error("; ".join(problems))
    return settings


def validate(settings: Settings) -> list[str]:
    problems = []
    try:
        check_weights({"--audio-weight": settings.audio_weight, "--video-weight": settings.video_weight})
    except ValueError as error:
        problems.append(str(error))
    if settings.fusion_method not in METHODS:
        problems.append(f"--fusion-method must be one of {', '.join(METHODS)}, got {settings.fusion_method!r}")
    for name in ("uncertain_below", "confident_above"):
        if not 0 <= getattr(settings, name) <= 1:
            problems.append(f"--{name.replace('_', '-')} must be between 0 and 1 (a probability)")
    if not 0 <= settings.smoothing_time_constant_s <= MAX_TIME_CONSTANT_S:
        problems.append(f"--smoothing-time-constant-s must be between 0 (no smoothing) and {MAX_TIME_CONSTANT_S:g}")
    for name in (
        "predict_timeout_s", "max_audio_seconds", "stream_result_rate_hz", "model_check_interval_s",
        "model_breaker_open_s",
    ):
        if not getattr(settings, name) > 0:
            problems.append(f"--{name.replace('_', '-')} must be > 0")
    if not 0 <= settings.model_retries <= MAX_RETRIES:
        problems.append(
            f"--model-retries must be between 0 and {MAX_RETRIES} (gRPC makes at most {MAX_RETRIES + 1} attempts)"
        )
    if settings.model_retry_backoff_s < MIN_BACKOFF_S:
        problems.append(f"--model-retry-backoff-s must be at least {MIN_BACKOFF_S} (shorter ones stall gRPC's retries)")
    for name in ("max_streams_per_client", "shutdown_grace_s"):
        if getattr(settings, name) < 0:
            problems.append(f"--{name.replace('_', '-')} must be >= 0")
    if settings.model_breaker_failures < 1:
        problems.append("--model-breaker-failures must be >= 1")
    if settings.max_image_pixels < 256:
        problems.append("--max-image-pixels must be at least 256 (16x16, the smallest image accepted)")
    if settings.max_message_bytes < 1024:
        problems.append("--max-message-bytes must be at least 1024")
    if not 0 <= settings.port < 65536:
        problems.append("--port must be in 0..65535 (0: any free port)")
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        problems.append("--tls-cert-file and --tls-key-file go together")
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        problems.append("--tls-client-ca-file needs --tls-cert-file and --tls-key-file")
    if bool(settings.model_tls_cert_file) != bool(settings.model_tls_key_file):
        problems.append("--model-tls-cert-file and --model-tls-key-file go together")
    if settings.model_tls_cert_file and not settings.model_tls_ca_file:
        problems.append("--model-tls-cert-file needs --model-tls-ca-file")
    for name in (
        "tls_cert_file", "tls_key_file", "tls_client_ca_file", "model_tls_ca_file", "model_tls_cert_file",
        "model_tls_key_file", "auth_tokens_file",
    ):
        path = getattr(settings, name)
        if path and not os.path.isfile(path):
            problems.append(f"--{name.replace('_', '-')} {path}: no such file")
    if settings.face_detector not in DETECTOR_NAMES:
        problems.append(f"--face-detector must be one of {', '.join(DETECTOR_NAMES)}, got {settings.face_detector!r}")
    if settings.worker_threads < 1:
        problems.append("--worker-threads must be >= 1")
    return problems


def options_table() -> list[tuple[str, str, str, str]]:
    """(flag, environment variable, default, meaning) for each option, for docs."""
    return [
        ("--" + f.name.replace("_", "-"), env_name(f.name), str(f.default) or "(none)", _HELP[f.name])
        for f in fields(Settings)
    ]
