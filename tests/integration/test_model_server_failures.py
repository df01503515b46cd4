"""Model servers stopped and restarted under a running stream: the service degrades, reports why, never
hangs, and recovers by itself. Real processes: development model servers and the fusion service."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from scripts.local_stack import LocalStack, free_port
from testkit.waiting import WAIT_S, wait_for
from tests.integration.helpers import fuse_request
from tests.integration.live_stream import LiveStream

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def statuses(response: pb.StreamResponse) -> tuple[int, int]:
    return response.result.audio.status, response.result.video.status


def scores(results) -> np.ndarray:
    return np.array([s.probability for s in results])


def test_stream_and_fuse_survive_each_model_server_going_down_and_coming_back(tmp_path):
    flags = ("--model-check-interval-s=0.5", "--model-breaker-open-s=1", "--predict-timeout-s=5")
    with LocalStack(
        audio_port=free_port(), video_port=free_port(), fusion_port=free_port(), log_dir=tmp_path, fusion_args=flags
    ) as stack, grpc.insecure_channel(stack.fusion_target) as channel:
        stack.wait_serving(timeout_s=WAIT_S)
        fusion = emotion_pb2_grpc.EmotionFusionStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        def health_is(status: int) -> bool:
            return health.Check(health_pb2.HealthCheckRequest(), timeout=WAIT_S).status == status

        stream = LiveStream(channel)
        stream.wait_for(lambda r: statuses(r) == (pb.USED, pb.USED), "answers from both models")

        # Audio model server down: the face carries the answer alone, and the response says why.
        stack.stop("audio-model-server")
        during = stream.wait_for(lambda r: statuses(r) == (pb.MODEL_UNAVAILABLE, pb.USED), "video-only answers")
        assert "'audio'" in during.result.audio.reason
        # The instant answer is the face's alone (the smoothed one still remembers the voice for a moment).
        np.testing.assert_allclose(scores(during.instant_fused), scores(during.result.video.scores), atol=1e-6)
        reply = fusion.Fuse(fuse_request(), timeout=WAIT_S)
        assert (reply.audio.status, reply.video.status) == (pb.MODEL_UNAVAILABLE, pb.USED)
        assert health_is(SERVING)

        # Both down: the stream goes on reporting statuses, Fuse is UNAVAILABLE, health NOT_SERVING.
        stack.stop("video-model-server")
        both_down = stream.wait_for(
            lambda r: statuses(r) == (pb.MODEL_UNAVAILABLE, pb.MODEL_UNAVAILABLE), "both models reported unavailable"
        )
        assert not both_down.result.fused and both_down.result.top_emotion == ""
        with pytest.raises(grpc.RpcError) as error:
            fusion.Fuse(fuse_request(), timeout=WAIT_S)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "no model server could answer" in error.value.details()
        wait_for(lambda: health_is(NOT_SERVING), "health NOT_SERVING with both model servers down")

        # Audio back: the voice answers again, health SERVING again, by itself.
        stack.start_model_server("audio")
        stream.wait_for(lambda r: statuses(r) == (pb.USED, pb.MODEL_UNAVAILABLE), "audio-only answers after its restart")
        wait_for(lambda: health_is(SERVING), "health SERVING with the audio model server back")

        # Video back: both again, on the same stream.
        stack.start_model_server("video")
        stream.wait_for(lambda r: statuses(r) == (pb.USED, pb.USED), "answers from both models after the restarts")
        reply = fusion.Fuse(fuse_request(), timeout=WAIT_S)
        assert (reply.audio.status, reply.video.status) == (pb.USED, pb.USED)

        assert not stream.ended.is_set(), f"the stream ended: {stream.error!r}"
        stream.close()
        assert stream.error is None
