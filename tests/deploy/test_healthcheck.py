"""deploy/images/healthcheck.py: the fusion image's health check, plain and over TLS."""

from __future__ import annotations

import subprocess
import sys
from concurrent import futures

import grpc
import pytest
import trustme
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.deploy.rendering import DEPLOY

HEALTHCHECK = DEPLOY / "images" / "healthcheck.py"
SERVICE = "emotion.v1.EmotionFusion"


def run_check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HEALTHCHECK), *args], capture_output=True, text=True, timeout=60)


@pytest.fixture
def health_server():
    """A gRPC server with only the health service; yields (servicer, port, TLS CA or None) per call."""
    servers = []

    def start(tls: bool = False) -> tuple[health.HealthServicer, int, trustme.CA | None]:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        servicer = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        ca = None
        if tls:
            ca = trustme.CA()
            certificate = ca.issue_cert("fusion", "fusion.emotion.svc.cluster.local")
            credentials = grpc.ssl_server_credentials(
                [(certificate.private_key_pem.bytes(), b"".join(c.bytes() for c in certificate.cert_chain_pems))]
            )
            port = server.add_secure_port("127.0.0.1:0", credentials)
        else:
            port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        servers.append(server)
        return servicer, port, ca

    yield start
    for server in servers:
        server.stop(None)


def test_exits_zero_only_while_the_service_is_serving(health_server):
    servicer, port, _ = health_server()
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert run_check(f"--address=127.0.0.1:{port}", f"--service={SERVICE}").returncode == 1
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    assert run_check(f"--address=127.0.0.1:{port}", f"--service={SERVICE}").returncode == 0


def test_fails_with_a_reason_when_nothing_answers(health_server):
    _, port, _ = health_server()
    result = run_check(f"--address=127.0.0.1:{port}", "--service=no.such.Service", "--timeout-s=2")
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


def test_checks_over_tls_with_the_given_ca_and_server_name(health_server, tmp_path):
    servicer, port, ca = health_server(tls=True)
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    ca_file = tmp_path / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))
    address = f"--address=127.0.0.1:{port}"
    assert run_check(address, f"--tls-ca-file={ca_file}", "--server-name=fusion").returncode == 0
    # A name the certificate does not carry, or no TLS at all, must not pass.
    assert run_check(address, f"--tls-ca-file={ca_file}", "--server-name=intruder", "--timeout-s=2").returncode == 1
    assert run_check(address, "--timeout-s=2").returncode == 1
