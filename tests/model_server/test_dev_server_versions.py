"""Versions while the server runs: a new one is served within a few polls, the old one retired after it,
and no request fails in between. Also start-up and shut-down of the process.
"""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from dev_server_models import run_directly, sample_input, write_model
from dev_server_process import DevModelServer
from tensorflow_serving.apis import (
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from testkit.waiting import wait_for

pytestmark = pytest.mark.ml

State = get_model_status_pb2.ModelVersionStatus.State
BATCH = sample_input("audio", 2, seed=3)


def predict_request(version: int | None = None) -> predict_pb2.PredictRequest:
    spec = model_pb2.ModelSpec(name="audio", version=None if version is None else {"value": version})
    request = predict_pb2.PredictRequest(model_spec=spec)
    request.inputs["features"].CopyFrom(tf.make_tensor_proto(BATCH))
    return request


def version_states(models) -> dict[int, str]:
    request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="audio"))
    response = models.GetModelStatus(request, timeout=30)
    return {status.version: State.Name(status.state) for status in response.model_version_status}


class PredictingClient:
    """Predicts on the latest version without pause, from a thread, recording versions and failures."""

    def __init__(self, predictions):
        self._predictions = predictions
        self._stop = threading.Event()
        self.versions: list[int] = []
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.versions.append(self._predictions.Predict(predict_request(), timeout=30).model_spec.version.value)
            except grpc.RpcError as error:
                self.failures.append(f"{error.code().name}: {error.details()}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def base_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("model_repository") / "audio"
    write_model(path, "audio", 1)
    return path


@pytest.fixture(scope="module")
def server(base_path, tmp_path_factory):
    flags = ["--model_name=audio", f"--model_base_path={base_path}", "--file_system_poll_wait_seconds=1"]
    with DevModelServer(flags, tmp_path_factory.mktemp("logs") / "server.log") as running:
        yield running


@pytest.fixture(scope="module")
def stubs(server):
    with grpc.insecure_channel(server.target) as channel:
        yield (
            prediction_service_pb2_grpc.PredictionServiceStub(channel),
            model_service_pb2_grpc.ModelServiceStub(channel),
        )


@pytest.fixture(scope="module")
def rollout(base_path, stubs, tmp_path_factory):
    """Drop version 2 into the model's directory while a client keeps predicting; wait until it took over."""
    predictions, models = stubs
    assert version_states(models) == {1: "AVAILABLE"}
    client = PredictingClient(predictions)
    wait_for(lambda: len(client.versions) >= 3, "predictions on version 1")
    staging = tmp_path_factory.mktemp("staging")
    write_model(staging, "audio", 2)
    (staging / "2").rename(base_path / "2")  # appears at once, as an export should make it appear
    try:
        wait_for(lambda: version_states(models) == {2: "AVAILABLE", 1: "END"}, "version 2 AVAILABLE and 1 END")
        wait_for(lambda: client.versions[-1] == 2, "predictions on version 2")
    finally:
        client.stop()
    return client


def test_new_version_is_served_once_loaded(rollout, stubs, base_path):
    predictions, _ = stubs
    response = predictions.Predict(predict_request(), timeout=30)

    assert response.model_spec.version.value == 2
    expected = run_directly(base_path / "2", "audio", BATCH)["probabilities"]
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]), expected, rtol=1e-6)


def test_old_version_is_retired_after_the_new_one_is_available(rollout, stubs, server):
    predictions, models = stubs
    assert list(version_states(models)) == [2, 1]  # newest first, as TF Serving lists them

    with pytest.raises(grpc.RpcError) as retired:
        predictions.Predict(predict_request(version=1), timeout=30)
    assert retired.value.code() == grpc.StatusCode.NOT_FOUND
    assert retired.value.details() == "Servable not found for request: Specific(audio, 1)"

    log = server.log()
    loaded = log.index("Successfully loaded servable version {name: audio version: 2}")
    assert loaded < log.index("Unloading servable version {name: audio version: 1}")
    assert "Done unloading servable version {name: audio version: 1}" in log


def test_no_request_fails_while_versions_change(rollout):
    assert rollout.failures == []
    assert set(rollout.versions) == {1, 2}
    switched = rollout.versions.index(2)
    assert set(rollout.versions[switched:]) == {2}, "once version 2 answered, version 1 never did again"


def test_server_refuses_to_start_when_a_model_fails_to_load(tmp_path):
    base = tmp_path / "audio"
    write_model(base, "audio", 1, warmup=False)
    (base / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    server = DevModelServer(["--model_name=audio", f"--model_base_path={base}"], tmp_path / "server.log")

    assert server.process.wait(timeout=180) == 1
    assert (
        "Failed to start server. Error: 1 model(s) did not become available: {{{name: audio version: 1} due to "
        f"error: DATA_LOSS: Can't parse {base / '1' / 'saved_model.pb'} as binary proto}}, }}"
    ) in server.log()
    server.stop()


def test_sigterm_stops_the_server_gracefully(tmp_path):
    base = tmp_path / "audio"
    write_model(base, "audio", 1, warmup=False)
    with DevModelServer(["--model_name=audio", f"--model_base_path={base}"], tmp_path / "server.log") as server:
        pass  # leaving the block sends SIGTERM

    assert server.process.returncode == 0
    assert "Server stopped" in server.log()


def write_model_config(path, entries: dict[str, tuple[object, str]]) -> None:
    """A ModelServerConfig text file: model name -> (base path, model_version_policy text)."""
    configs = "".join(
        f'  config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" {policy} }}\n'
        for name, (base, policy) in entries.items()
    )
    path.write_text(f"model_config_list {{\n{configs}}}\n")


def test_version_policies_and_models_follow_the_config_file_while_serving(tmp_path):
    repository = tmp_path / "models"
    for version in (1, 2):
        write_model(repository / "audio", "audio", version, warmup=False)
    write_model(repository / "video", "video", 1, warmup=False)
    config = tmp_path / "models.config"
    write_model_config(config, {"audio": (repository / "audio", "model_version_policy { all {} }")})
    flags = [f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=1"]
    with DevModelServer(flags, tmp_path / "server.log") as server, grpc.insecure_channel(server.target) as channel:
        predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)
        wait_for(lambda: version_states(models) == {2: "AVAILABLE", 1: "AVAILABLE"}, "both versions AVAILABLE")
        for version in (1, 2):
            assert predictions.Predict(predict_request(version), timeout=30).model_spec.version.value == version

        write_model_config(config, {
            "audio": (repository / "audio", "model_version_policy { specific { versions: 1 } }"),
            "video": (repository / "video", ""),
        })
        wait_for(lambda: version_states(models) == {2: "END", 1: "AVAILABLE"}, "only version 1 served")
        assert predictions.Predict(predict_request(), timeout=30).model_spec.version.value == 1

        def video_available() -> bool:
            request = get_model_status_pb2.GetModelStatusRequest(model_spec=model_pb2.ModelSpec(name="video"))
            try:
                statuses = models.GetModelStatus(request, timeout=30).model_version_status
            except grpc.RpcError:  # NOT_FOUND until the new config is read
                return False
            return [status.state for status in statuses] == [State.AVAILABLE]

        wait_for(video_available, "the video model added to the config file AVAILABLE")
