"""Health check of the fusion service from inside its container: exit 0 when it is SERVING.

Docker's HEALTHCHECK runs it, and so does the Kubernetes readiness probe when the service speaks
TLS (the kubelet's own gRPC probe cannot). It asks grpc.health.v1, which the service keeps at
SERVING only while both model servers answer with the expected models.
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--address",
        default=f"127.0.0.1:{os.environ.get('FUSION_PORT', '50051')}",
        help="host:port of the service (default: this container, port FUSION_PORT or 50051)",
    )
    parser.add_argument("--service", default="", help="health service name; empty: the whole server")
    parser.add_argument("--timeout-s", type=float, default=3.0, help="deadline of the check")
    parser.add_argument("--tls-ca-file", help="PEM CA bundle that signed the service's certificate; turns on TLS")
    parser.add_argument("--server-name", help="name the service's certificate must carry (with --tls-ca-file)")
    return parser.parse_args(argv)


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    if not args.tls_ca_file:
        return grpc.insecure_channel(args.address)
    with open(args.tls_ca_file, "rb") as ca_file:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca_file.read())
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(args.address, credentials, options)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    target = f"{args.address} ({args.service or 'server'})"
    with open_channel(args) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout_s
            )
        except grpc.RpcError as error:
            print(f"{target}: health check failed: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    print(f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
