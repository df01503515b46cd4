# syntax=docker/dockerfile:1
# The web gateway: the live page and its WebSocket-to-gRPC bridge. Python, aiohttp and gRPC only (the
# `gateway` extra): no OpenCV, no TensorFlow. Build from the repository root:
#   docker build -f deploy/images/web.Dockerfile -t emotion-web:0.1.0 .
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY protos/ protos/
RUN python -m venv /opt/protoc \
 && /opt/protoc/bin/pip install "grpcio-tools>=1.66" \
 && /opt/protoc/bin/python -m protos.generate
# The gateway lives in the capture client's package; its page comes with it as package data.
COPY pyproject.toml README.md ./
COPY capture_client/ capture_client/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install ".[gateway]"

FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 10001 web \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin web
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EMOTION_WEB_HOST=0.0.0.0 \
    EMOTION_WEB_PORT=8080
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["python", "-m", "capture_client.web"]
