"""The whole system over real gRPC: development model servers with the committed models, and the fusion service."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fusion_service.fusion import fuse
from fusion_service.fusion_methods import DEFAULT_METHOD, method_value
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from protos.emotion.v1.constants import LABELS
from scripts.local_stack import ROOT
from testkit.media import face_photo, jpeg, no_face_photo, pcm16, speech


@pytest.fixture(scope="module")
def client(stack):
    with grpc.insecure_channel(stack.fusion_target) as channel:
        yield emotion_pb2_grpc.EmotionFusionStub(channel)


def audio_message(samples: np.ndarray) -> pb.Audio:
    return pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=16000, data=pcm16(samples))


def assert_distribution(scores) -> np.ndarray:
    assert [s.label for s in scores] == list(LABELS)
    values = np.array([s.probability for s in scores])
    assert values.sum() == pytest.approx(1.0, abs=1e-4)
    assert (values >= 0).all()
    return values


def test_face_and_speech_give_three_distributions_over_named_labels(client):
    response = client.Fuse(pb.FuseRequest(audio=audio_message(speech(2.0)), image=pb.Image(encoded=jpeg(face_photo()))), timeout=30)

    assert response.video.status == pb.USED, response.video.reason
    assert response.audio.status == pb.USED, response.audio.reason
    audio = assert_distribution(response.audio.scores)
    video = assert_distribution(response.video.scores)
    fused = assert_distribution(response.fused)
    # The service's default fusion (learned on validation pairs) over the two answers, with the default weights.
    expected = fuse(DEFAULT_METHOD, {"audio": audio, "video": video}, {"audio": 0.3, "video": 0.7})
    np.testing.assert_allclose(fused, expected.probabilities, atol=1e-4)
    assert response.fusion_method == method_value(DEFAULT_METHOD)
    assert (response.audio_weight, response.video_weight) == pytest.approx(
        (expected.weights["audio"], expected.weights["video"]), abs=1e-4)
    assert response.top_emotion == LABELS[int(np.argmax(fused))]
    assert response.top_probability == pytest.approx(fused.max(), abs=1e-6)
    assert response.audio.model_name == "audio" and response.audio.model_version >= 1
    assert response.video.model_name == "video" and response.video.model_version >= 1
    assert len(response.faces) == 1 and response.primary_face == 0
    box = response.faces[0].box
    # The astronaut's face is in the upper middle of the 512x512 photograph.
    assert 120 < box.x + box.width / 2 < 300 and 40 < box.y + box.height / 2 < 200
    np.testing.assert_allclose(assert_distribution(response.faces[0].scores), video, atol=1e-6)
    assert response.request_id


def test_landscape_and_silence_invent_no_emotion(client):
    silence = np.zeros(32000, dtype=np.float32)
    response = client.Fuse(pb.FuseRequest(audio=audio_message(silence), image=pb.Image(encoded=jpeg(no_face_photo()))), timeout=30)
    assert response.audio.status == pb.NO_SPEECH and response.audio.reason
    assert response.video.status == pb.NO_FACE and response.video.reason
    assert not response.audio.scores and not response.video.scores and not response.faces
    assert not response.fused and response.top_emotion == ""
    assert response.primary_face == -1
    assert (response.audio_weight, response.video_weight) == (0.0, 0.0)


def test_face_alone_carries_the_answer(client):
    response = client.Fuse(pb.FuseRequest(image=pb.Image(encoded=jpeg(face_photo()))), timeout=30)
    assert response.audio.status == pb.ABSENT
    assert response.video.status == pb.USED
    np.testing.assert_allclose(assert_distribution(response.fused), assert_distribution(response.video.scores), atol=1e-6)
    assert (response.audio_weight, response.video_weight) == (0.0, 1.0)


def test_raw_bgr_frame_is_accepted(client):
    image = face_photo()
    raw = pb.RawFrame(width=image.shape[1], height=image.shape[0], format=pb.BGR8, data=image.tobytes())
    response = client.Fuse(pb.FuseRequest(image=pb.Image(raw=raw)), timeout=30)
    assert response.video.status == pb.USED and len(response.faces) == 1


def test_per_request_options_choose_modalities_and_weights(client):
    request = pb.FuseRequest(
        audio=audio_message(speech(2.0)),
        image=pb.Image(encoded=jpeg(face_photo())),
        options=pb.FusionOptions(modalities=[pb.AUDIO], audio_weight=2.0),
    )
    response = client.Fuse(request, timeout=30)
    assert response.video.status == pb.DISABLED
    assert response.audio.status == pb.USED
    assert (response.audio_weight, response.video_weight) == (1.0, 0.0)

    request.options.Clear()
    request.options.audio_weight, request.options.video_weight = 1.0, 1.0
    response = client.Fuse(request, timeout=30)
    fused = assert_distribution(response.fused)
    np.testing.assert_allclose(
        fused, 0.5 * assert_distribution(response.audio.scores) + 0.5 * assert_distribution(response.video.scores), atol=1e-4
    )


def test_malformed_request_gets_invalid_argument_and_the_service_goes_on(client):
    with pytest.raises(grpc.RpcError) as error:
        client.Fuse(pb.FuseRequest(image=pb.Image(encoded=b"definitely not a jpeg")), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "JPEG or PNG" in error.value.details()
    with pytest.raises(grpc.RpcError) as error:
        client.Fuse(pb.FuseRequest(options=pb.FusionOptions(audio_weight=-1)), timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert client.Fuse(pb.FuseRequest(image=pb.Image(encoded=jpeg(face_photo()))), timeout=30).video.status == pb.USED


def stream_requests(seconds: float, fps: float = 15.0, chunk_ms: int = 20):
    """A live client: audio in 20 ms chunks and frames at `fps`, paced at twice real time."""
    yield pb.StreamRequest(config=pb.StreamConfig(audio_encoding=pb.PCM_S16LE, audio_sample_rate_hz=16000, result_rate_hz=5))
    audio = speech(seconds)
    frame = pb.Image(encoded=jpeg(face_photo()))
    chunk = 16000 * chunk_ms // 1000
    every = max(1, round(1000 / fps / chunk_ms))
    for i, start in enumerate(range(0, len(audio), chunk)):
        yield pb.StreamRequest(audio=pb.AudioChunk(data=pcm16(audio[start:start + chunk])))
        if i % every == 0:
            yield pb.StreamRequest(frame=pb.Frame(image=frame, sequence=i // every + 1))
        time.sleep(chunk_ms / 1000 / 2)


def test_stream_sends_fused_results_at_a_steady_rate(client):
    started = time.monotonic()
    responses = list(client.StreamFuse(stream_requests(4.0), timeout=60))
    # Results are paced by the service's clock at 5 Hz: about 10 in the 2 s that 4 s of input take at twice real
    # time, more where a loaded machine stretches the sending (plus the final result).
    expected = 5 * (time.monotonic() - started) + 1
    assert 0.6 * expected <= len(responses) <= 1.3 * expected, (len(responses), expected)
    sequences = [r.frame_sequence for r in responses]
    assert sequences == sorted(sequences) and sequences[-1] > 1
    assert [r.audio_end_seconds for r in responses] == sorted(r.audio_end_seconds for r in responses)
    assert responses[-1].audio_end_seconds == pytest.approx(4.0, abs=0.05)
    last = responses[-1].result
    assert last.video.status == pb.USED and last.audio.status == pb.USED, (last.audio.reason, last.video.reason)
    for response in responses:
        if response.result.fused:
            assert_distribution(response.result.fused)
            assert response.result.top_emotion in LABELS


def test_stream_with_a_bad_frame_ends_with_invalid_argument(client):
    def requests():
        yield pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=b"garbage"), sequence=1))
        time.sleep(1.0)

    with pytest.raises(grpc.RpcError) as error:
        list(client.StreamFuse(requests(), timeout=10))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_health_is_serving_and_reflection_lists_the_api(stack):
    with grpc.insecure_channel(stack.fusion_target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "emotion.v1.EmotionFusion"):
            assert health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        reply = next(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5))
        names = {s.name for s in reply.list_services_response.service}
        assert {"emotion.v1.EmotionFusion", "grpc.health.v1.Health"} <= names


def test_fusion_environment_has_no_tensorflow():
    assert importlib.util.find_spec("tensorflow") is None


def test_a_client_built_from_the_proto_file_alone_can_call_fuse(stack, tmp_path):
    """Node's grpc-js, loading only protos/emotion/v1/emotion.proto, calls Fuse."""
    node_dir = ROOT / "tests" / "interop" / "node"
    if not (node_dir / "node_modules").exists():
        pytest.fail("tests/interop/node/node_modules is missing: run `make test`, which installs it with npm ci")
    image, audio = tmp_path / "face.jpg", tmp_path / "speech.pcm"
    image.write_bytes(jpeg(face_photo()))
    audio.write_bytes(pcm16(speech(2.0)))
    result = subprocess.run(
        ["node", str(node_dir / "fuse.js"), stack.fusion_target, str(image), str(audio)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["video"]["status"] == "USED"
    assert [s["label"] for s in response["fused"]] == list(LABELS)
    assert sum(s["probability"] for s in response["fused"]) == pytest.approx(1.0, abs=1e-4)
