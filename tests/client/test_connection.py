"""Target, TLS and token flags reach the channel and the call metadata; reconnect back-off."""

from __future__ import annotations

import argparse
import subprocess

import grpc
import numpy as np
import pytest

from capture_client.connection import DEFAULT_TARGET, Backoff, Connection, add_connection_arguments, connection_from_args
from capture_client.modes import stream_config
from capture_client.outbox import Outbox
from capture_client.state import LiveState
from capture_client.stream import StreamClient
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from testkit.waiting import wait_for
from tests.client.fake_service import RecordingFusion, serve


def parse(argv: list[str], environ: dict[str, str], monkeypatch) -> Connection:
    for name in ("EMOTION_TARGET", "EMOTION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    parser = argparse.ArgumentParser()
    add_connection_arguments(parser)
    return connection_from_args(parser, parser.parse_args(argv))


def test_target_comes_from_the_flag_then_the_environment_then_the_default(monkeypatch):
    assert parse([], {}, monkeypatch).target == DEFAULT_TARGET == "localhost:50051"
    assert parse([], {"EMOTION_TARGET": "fusion:6000"}, monkeypatch).target == "fusion:6000"
    assert parse(["--target", "other:7000"], {"EMOTION_TARGET": "fusion:6000"}, monkeypatch).target == "other:7000"


def test_a_client_certificate_needs_its_key(monkeypatch, tmp_path, capsys):
    cert = tmp_path / "client.pem"
    cert.write_text("x")
    with pytest.raises(SystemExit):
        parse(["--client-cert", str(cert)], {}, monkeypatch)
    assert "--client-cert and --client-key go together" in capsys.readouterr().err


def test_the_token_is_sent_as_bearer_authorization_metadata(monkeypatch):
    servicer = RecordingFusion()
    server, port = serve(servicer)
    try:
        connection = parse(["--target", f"localhost:{port}"], {"EMOTION_TOKEN": "s3cret"}, monkeypatch)
        with connection.open_channel() as channel:
            emotion_pb2_grpc.EmotionFusionStub(channel).Fuse(pb.FuseRequest(), metadata=connection.metadata, timeout=5)
    finally:
        server.stop(None)
    assert servicer.metadata[0]["authorization"] == "Bearer s3cret"


def self_signed(directory, name: str):
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return key, cert


def test_mutual_tls_flags_make_a_verified_secure_channel(monkeypatch, tmp_path):
    server_key, server_cert = self_signed(tmp_path, "server")
    client_key, client_cert = self_signed(tmp_path, "client")
    credentials = grpc.ssl_server_credentials(
        [(server_key.read_bytes(), server_cert.read_bytes())], root_certificates=client_cert.read_bytes(), require_client_auth=True
    )
    servicer = RecordingFusion()
    server, port = serve(servicer, credentials)
    try:
        connection = parse(
            ["--target", f"localhost:{port}", "--ca-cert", str(server_cert), "--client-cert", str(client_cert),
             "--client-key", str(client_key), "--token", "t"],
            {}, monkeypatch,
        )
        assert connection.uses_tls
        with connection.open_channel() as channel:
            reply = emotion_pb2_grpc.EmotionFusionStub(channel).Fuse(pb.FuseRequest(), metadata=connection.metadata, timeout=5)
        assert reply.top_emotion == "happy" and servicer.metadata[0]["authorization"] == "Bearer t"
        # The same service refuses a plain-text client.
        with grpc.insecure_channel(f"localhost:{port}") as channel, pytest.raises(grpc.RpcError):
            emotion_pb2_grpc.EmotionFusionStub(channel).Fuse(pb.FuseRequest(), timeout=2)
    finally:
        server.stop(None)


def test_backoff_doubles_up_to_its_ceiling_and_starts_over_after_a_success():
    backoff = Backoff(initial_s=0.5, max_s=3.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_a_stream_refused_for_credentials_stops_retrying_and_says_why():
    server, port = serve(RecordingFusion(refuse_with=grpc.StatusCode.UNAUTHENTICATED))
    state = LiveState(f"localhost:{port}", "video")
    client = StreamClient(Connection(f"localhost:{port}"), stream_config("video", 0), Outbox(), state, Backoff(0.05, 0.1))
    try:
        client.start()
        wait_for(lambda: client.error is not None, "the client to give up")
    finally:
        client.stop()
        server.stop(None)
    assert "--token" in client.error and state.connection == "failed"


def test_while_the_service_is_away_the_client_retries_and_says_so():
    outbox = Outbox()
    state = LiveState("localhost:1", "video")
    client = StreamClient(Connection("localhost:1"), stream_config("video", 0), outbox, state, Backoff(0.05, 0.1), connect_timeout_s=0.2)
    try:
        client.start()
        outbox.put_frame(1, np.zeros((8, 8, 3), np.uint8))
        wait_for(lambda: state.connection == "reconnecting", "the client to say it reconnects")
        _, view = state.snapshot(outbox)
    finally:
        client.stop()
    assert "not reachable" in view.notice and "reconnecting to localhost:1 in" in view.notice
