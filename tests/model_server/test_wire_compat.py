"""The vendored TF Serving protos (protos/tfserving) are wire-compatible with the official ones.

Runs in the environment without TensorFlow and reaches the TensorFlow one (.venv-ml) through
subprocesses: each side describes its protos in its own process, and a client built from
protos.tfserving alone talks to the development model server. The server speaks the vendored protos too
(model_server/wire.py), so the other tests of tests/model_server call it with the official stubs, which keeps
it checked against them.
"""

from __future__ import annotations

import json
import subprocess
import sys

import grpc
import numpy as np
import pytest
from dev_server_process import REPO_ROOT, DevModelServer, ml_python

from protos.emotion.v1.constants import LABELS

DESCRIBE = ["-m", "tests.model_server.proto_descriptors"]


def run(python, args: list[str], stdin: str = "") -> str:
    result = subprocess.run(
        [str(python), *args], cwd=REPO_ROOT, input=stdin, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{' '.join(map(str, args))} failed:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def generated_stubs():
    """Stubs generated from the .proto files as they are now, not left over from an earlier run."""
    run(sys.executable, ["-m", "protos.generate"])


@pytest.fixture(scope="module")
def descriptions(generated_stubs) -> tuple[dict, dict]:
    ours = run(sys.executable, [*DESCRIBE, "ours"])
    official = run(ml_python(), [*DESCRIBE, "official"], stdin=ours)
    return json.loads(ours), json.loads(official)


@pytest.mark.parametrize("kind", ["messages", "enums", "services"])
def test_everything_we_define_exists_identically_in_the_official_protos(descriptions, kind):
    ours, official = descriptions
    assert ours[kind], f"found no {kind} in protos/tfserving"
    differences = []
    for name, described in sorted(ours[kind].items()):
        if name not in official[kind]:
            differences.append(f"{name}: not in the official protos")
            continue
        for member, ours_member in described.items():
            official_member = official[kind][name].get(member)
            if official_member != ours_member:
                differences.append(f"{name}.{member}: ours {ours_member}, official {official_member}")
    assert differences == []


def test_the_services_used_by_the_fusion_service_are_all_there(descriptions):
    ours, _ = descriptions
    assert set(ours["services"]["tensorflow.serving.PredictionService"]) == {"Predict", "GetModelMetadata"}
    assert set(ours["services"]["tensorflow.serving.ModelService"]) == {"GetModelStatus"}


@pytest.fixture(scope="module")
def model_repository(tmp_path_factory) -> tuple:
    out = tmp_path_factory.mktemp("model_repository")
    run(ml_python(), ["-m", "tests.model_server.dev_server_models", str(out)])
    return out, np.load(out / "reference.npz")


@pytest.fixture(scope="module")
def server(generated_stubs, model_repository, tmp_path_factory):
    out, _ = model_repository
    flags = ["--model_name=audio", f"--model_base_path={out / 'audio'}"]
    with DevModelServer(flags, tmp_path_factory.mktemp("logs") / "server.log") as running:
        yield running


def test_a_client_of_the_vendored_stubs_reads_the_dev_servers_answers(server, model_repository):
    from protos.tfserving import (
        get_model_metadata_pb2,
        get_model_status_pb2,
        model_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
        tensor_pb2,
        tensor_shape_pb2,
        types_pb2,
    )

    _, reference = model_repository
    features = reference["features"]
    spec = model_pb2.ModelSpec(name="audio")
    with grpc.insecure_channel(server.target) as channel:
        predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        models = model_service_pb2_grpc.ModelServiceStub(channel)

        request = predict_pb2.PredictRequest(model_spec=spec)
        request.inputs["features"].CopyFrom(
            tensor_pb2.TensorProto(
                dtype=types_pb2.DT_FLOAT,
                tensor_shape=tensor_shape_pb2.TensorShapeProto(
                    dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in features.shape]
                ),
                tensor_content=features.astype("<f4").tobytes(),
            )
        )
        predicted = predictions.Predict(request, timeout=30)
        metadata = predictions.GetModelMetadata(
            get_model_metadata_pb2.GetModelMetadataRequest(model_spec=spec, metadata_field=["signature_def"]),
            timeout=30,
        )
        status = models.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec=spec), timeout=30)

    assert (predicted.model_spec.name, predicted.model_spec.version.value) == ("audio", 1)
    probabilities = predicted.outputs["probabilities"]
    assert [d.size for d in probabilities.tensor_shape.dim] == [2, 7]
    np.testing.assert_allclose(
        np.array(probabilities.float_val, np.float32).reshape(2, 7), reference["probabilities"], rtol=1e-6
    )
    assert [value.decode() for value in predicted.outputs["labels"].string_val] == list(LABELS) * 2

    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert metadata.metadata["signature_def"].Unpack(signatures)
    features_info = signatures.signature_def["serving_default"].inputs["features"]
    assert features_info.dtype == types_pb2.DT_FLOAT
    assert [d.size for d in features_info.tensor_shape.dim] == [-1, 126, 98]

    [version] = status.model_version_status
    assert (version.version, version.state) == (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    assert version.status.error_code == 0
