# syntax=docker/dockerfile:1
# One version of one model, baked into the official TensorFlow Serving image: the image tag is
# the model version, so a rollout or a rollback is an image change. Build from the repository root:
#   docker build -f deploy/images/model-server.Dockerfile \
#     --build-arg MODEL_NAME=audio --build-arg MODEL_VERSION=6 -t emotion-model-audio:6 .
# Use the TF Serving release of the TensorFlow that exported the models (training: 2.21).
ARG TF_SERVING_VERSION=2.21.0
FROM tensorflow/serving:${TF_SERVING_VERSION}
ARG MODEL_NAME
ARG MODEL_VERSION
RUN test -n "${MODEL_NAME}" && test -n "${MODEL_VERSION}" \
 || { echo "build with --build-arg MODEL_NAME=audio|video --build-arg MODEL_VERSION=<n>" >&2; exit 1; }
RUN groupadd --system --gid 10001 tfserving \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin tfserving
# model_repository/<name>/<version>/: saved_model.pb, variables/, assets/, assets.extra/ (warm-up).
COPY model_repository/${MODEL_NAME}/${MODEL_VERSION}/ /models/${MODEL_NAME}/${MODEL_VERSION}/
# The base image's entrypoint serves /models/${MODEL_NAME}; Kubernetes and compose pass their own flags.
ENV MODEL_NAME=${MODEL_NAME}
USER 10001:10001
# gRPC and REST (REST also carries the Prometheus metrics).
EXPOSE 8500 8501
# The REST port opens once the model is loaded; the metadata call succeeds while a version is AVAILABLE.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8501 && printf 'GET /v1/models/%s/metadata HTTP/1.0\\r\\n\\r\\n' \"$MODEL_NAME\" >&3 && head -n 1 <&3 | grep -q ' 200 '"]
