"""TLS with certificates made at test time (trustme): TLS and mutual TLS for the service's clients, and
mutual TLS from the service to a model server (TF Serving's --ssl_config_file), with token auth on top."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import grpc
import pytest
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from scripts.local_stack import ROOT, LocalStack, free_port, model_server_command
from testkit.waiting import WAIT_S, wait_for
from tests.integration.helpers import fuse_request

HOSTS = ("localhost", "127.0.0.1")


class Certificates:
    """A CA and a certificate it issued, written as PEM files."""

    def __init__(self, directory: Path, name: str, *identities: str):
        self.ca = trustme.CA()
        issued = self.ca.issue_cert(*identities)
        self.ca_file = directory / f"{name}-ca.pem"
        self.cert_file = directory / f"{name}-cert.pem"
        self.key_file = directory / f"{name}-key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        issued.private_key_pem.write_to_path(str(self.key_file))
        self.cert_file.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))

    def client_credentials(self, trusted_ca: Path) -> grpc.ChannelCredentials:
        """Present this certificate, trusting `trusted_ca` for the server's."""
        return grpc.ssl_channel_credentials(trusted_ca.read_bytes(), self.key_file.read_bytes(), self.cert_file.read_bytes())


def secure_health(target: str, credentials: grpc.ChannelCredentials) -> int:
    with grpc.secure_channel(target, credentials) as channel:
        return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10).status


def wait_serving(target: str, credentials: grpc.ChannelCredentials) -> None:
    def serving() -> bool:
        try:
            return secure_health(target, credentials) == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    wait_for(serving, f"{target} SERVING over TLS", interval_s=0.5)


def connection_refused(target: str, credentials: grpc.ChannelCredentials | None) -> bool:
    channel = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
    with channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
        except grpc.RpcError as error:
            return error.code() == grpc.StatusCode.UNAVAILABLE
    return False


def test_tls_for_clients(start_fusion, tmp_path):
    server = Certificates(tmp_path, "server", *HOSTS)
    stack = start_fusion(f"--tls-cert-file={server.cert_file}", f"--tls-key-file={server.key_file}", wait=False)
    target = f"localhost:{stack.ports['fusion']}"
    trusted = grpc.ssl_channel_credentials(server.ca_file.read_bytes())
    wait_serving(target, trusted)

    with grpc.secure_channel(target, trusted) as channel:
        reply = emotion_pb2_grpc.EmotionFusionStub(channel).Fuse(fuse_request(), timeout=WAIT_S)
    assert reply.video.status == pb.USED and reply.audio.status == pb.USED

    assert connection_refused(target, None), "a plaintext client got through"
    stranger = grpc.ssl_channel_credentials(trustme.CA().cert_pem.bytes())
    assert connection_refused(target, stranger), "a client trusting another CA got through"


def test_mutual_tls_to_clients_and_to_the_model_server_with_tokens(tmp_path, monkeypatch):
    service = Certificates(tmp_path, "service", *HOSTS)  # the fusion service's server certificate
    client = Certificates(tmp_path, "client", "client@example.org")  # a user of the service
    model = Certificates(tmp_path, "model", *HOSTS)  # the model server's certificate
    fusion_client = Certificates(tmp_path, "fusion", "fusion-service")  # the service as the model server's client

    # One development model server serves both models over mutual TLS (TF Serving's flags).
    ssl_config = tmp_path / "ssl.config"
    ssl_config.write_text(
        f"server_key: {json.dumps(model.key_file.read_text())}\n"
        f"server_cert: {json.dumps(model.cert_file.read_text())}\n"
        f"custom_ca: {json.dumps(fusion_client.ca_file.read_text())}\n"
        "client_verify: true\n"
    )
    models = tmp_path / "models.config"
    models.write_text(
        "model_config_list {\n"
        + "".join(
            f'  config {{ name: "{name}" base_path: "{ROOT / "model_repository" / name}" model_platform: "tensorflow" }}\n'
            for name in ("audio", "video")
        )
        + "}\n"
    )
    port = free_port()
    command = model_server_command("audio", ROOT / "model_repository" / "audio", port)
    command += [f"--model_config_file={models}", f"--ssl_config_file={ssl_config}"]
    with open(tmp_path / "model-server.log", "wb") as log:
        model_server = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        monkeypatch.setenv("FUSION_AUTH_TOKENS", "let-me-in")
        stack = LocalStack(
            audio_port=port, video_port=port, fusion_port=free_port(), log_dir=tmp_path / "fusion",
            fusion_args=(
                f"--tls-cert-file={service.cert_file}", f"--tls-key-file={service.key_file}",
                f"--tls-client-ca-file={client.ca_file}",
                f"--model-tls-ca-file={model.ca_file}", f"--model-tls-cert-file={fusion_client.cert_file}",
                f"--model-tls-key-file={fusion_client.key_file}",
            ),
        )
        stack.start_fusion()
        try:
            target = f"localhost:{stack.ports['fusion']}"
            credentials = client.client_credentials(service.ca_file)
            # Health answers over mutual TLS without a token, once the model server answered over TLS.
            wait_serving(target, credentials)
            with grpc.secure_channel(target, credentials) as channel:
                fusion = emotion_pb2_grpc.EmotionFusionStub(channel)
                with pytest.raises(grpc.RpcError) as error:
                    fusion.Fuse(fuse_request(), timeout=WAIT_S)
                assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
                reply = fusion.Fuse(fuse_request(), metadata=(("authorization", "Bearer let-me-in"),), timeout=WAIT_S)
                assert reply.audio.status == pb.USED and reply.video.status == pb.USED

            no_certificate = grpc.ssl_channel_credentials(service.ca_file.read_bytes())
            assert connection_refused(target, no_certificate), "a client without a certificate got through"
            outsider = Certificates(tmp_path, "outsider", "outsider@example.org")
            assert connection_refused(target, outsider.client_credentials(service.ca_file)), (
                "a client certificate from an unknown CA got through"
            )
        finally:
            stack.stop()
    finally:
        model_server.terminate()
        model_server.wait(WAIT_S)
