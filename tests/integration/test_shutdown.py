"""SIGTERM on the fusion service process: health NOT_SERVING, running streams end with a final message,
new calls are refused, and the process exits 0."""

from __future__ import annotations

import signal

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from protos.emotion.v1 import emotion_pb2_grpc
from testkit.waiting import WAIT_S
from tests.integration.helpers import fuse_request, log_text
from tests.integration.live_stream import LiveStream


def test_sigterm_drains_streams_with_a_final_message_refuses_new_calls_and_exits_0(start_fusion):
    # The grace period is long so that the health watch below keeps the service in its shutdown phase
    # while the test makes a new call; the service would end sooner without it.
    stack = start_fusion("--shutdown-grace-s=120")
    process = stack.processes["fusion"]
    with grpc.insecure_channel(stack.fusion_target) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=WAIT_S * 2)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        streams = [LiveStream(channel) for _ in range(2)]
        for stream in streams:
            stream.wait_for(lambda r: r.result.HasField("video"), "a first result")

        process.send_signal(signal.SIGTERM)

        for update in watch:
            if update.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                break
        for stream in streams:
            assert stream.ended.wait(WAIT_S), "the stream did not end after SIGTERM"
            assert stream.error is None, f"the stream ended with an error: {stream.error!r}"
            assert stream.responses[-1].final, "the last message of the stream is not marked final"
            assert not any(r.final for r in stream.responses[:-1])

        assert process.poll() is None, "the service exited before the test could call it while shutting down"
        with pytest.raises(grpc.RpcError) as error:
            emotion_pb2_grpc.EmotionFusionStub(channel).Fuse(fuse_request(), timeout=WAIT_S)
        assert error.value.code() == grpc.StatusCode.UNAVAILABLE
        watch.cancel()

    assert process.wait(WAIT_S) == 0
    log = log_text(stack)
    assert "shutting down" in log and "stopped" in log
