# syntax=docker/dockerfile:1
# The fusion service: Python, numpy, OpenCV, LiteRT (the face networks) and gRPC only. The stub generator (grpcio-tools)
# stays in the build stage. Build from the repository root:
#   docker build -f deploy/images/fusion.Dockerfile -t emotion-fusion:0.1.0 .
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# gRPC stubs, generated from protos/ (they are never committed).
COPY protos/ protos/
RUN python -m venv /opt/protoc \
 && /opt/protoc/bin/pip install "grpcio-tools>=1.66" \
 && /opt/protoc/bin/python -m protos.generate
# The service and exactly its run-time dependencies: the `service` extra of pyproject.toml. The face
# networks come with fusion_service/ as package data.
COPY pyproject.toml README.md ./
COPY fusion_service/ fusion_service/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install ".[service]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 fusion \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin fusion
COPY --from=build /opt/venv /opt/venv
COPY deploy/images/healthcheck.py /opt/fusion/healthcheck.py
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    OPENBLAS_NUM_THREADS=1
USER 10001:10001
# gRPC (Fuse, StreamFuse, grpc.health.v1, reflection) and Prometheus metrics.
EXPOSE 50051 9464
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "/opt/fusion/healthcheck.py"]
ENTRYPOINT ["python", "-m", "fusion_service"]
