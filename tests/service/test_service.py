"""FusionService in-process with fake model servers: degraded answers, health, deadlines, wire errors, shutdown."""

from __future__ import annotations

import asyncio
import socket

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fusion_service.__main__ import main
from fusion_service.config import Settings
from fusion_service.fusion import fuse
from fusion_service.fusion_methods import DEFAULT_METHOD
from fusion_service.server import NOT_SERVING, SERVING, FusionService, StartupError, serving_status
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import LABELS
from tests.service.harness import HAPPY, SAD, face_jpeg, good_request, running_service, speech_pcm, wait_until


def scores(results) -> np.ndarray:
    assert [s.label for s in results] == list(LABELS)
    return np.array([s.probability for s in results])


def test_health_waits_for_both_models_once_then_needs_only_one():
    assert serving_status(set(), {"audio": True, "video": False}) == NOT_SERVING
    assert serving_status({"audio", "video"}, {"audio": True, "video": True}) == SERVING
    assert serving_status({"audio", "video"}, {"audio": False, "video": True}) == SERVING
    assert serving_status({"audio", "video"}, {"audio": False, "video": False}) == NOT_SERVING


def test_one_model_server_down_the_other_answers_and_the_response_says_which_is_missing():
    async def run():
        async with running_service() as running:
            await running.wait_health(SERVING)
            both = await running.stub.Fuse(good_request(), timeout=60)
            expected = fuse(DEFAULT_METHOD, {"audio": SAD, "video": HAPPY}, {"audio": 0.3, "video": 0.7})
            np.testing.assert_allclose(scores(both.fused), expected.probabilities, atol=1e-6)

            running.audio.mode = "unavailable"
            reply = await running.stub.Fuse(good_request(), timeout=60)
            assert reply.audio.status == pb.MODEL_UNAVAILABLE
            assert "model 'audio'" in reply.audio.reason and "UNAVAILABLE" in reply.audio.reason
            assert reply.video.status == pb.USED
            np.testing.assert_allclose(scores(reply.fused), HAPPY, atol=1e-6)
            assert (reply.audio_weight, reply.video_weight) == (0.0, 1.0)
            await running.wait_health(SERVING)  # one model still answers

            running.audio.mode, running.video.mode = "answer", "unavailable"
            reply = await running.stub.Fuse(good_request(), timeout=60)
            assert (reply.audio.status, reply.video.status) == (pb.USED, pb.MODEL_UNAVAILABLE)
            np.testing.assert_allclose(scores(reply.fused), SAD, atol=1e-6)

    asyncio.run(run())


def test_both_model_servers_down_fuse_is_unavailable_health_not_serving_and_both_come_back():
    async def run():
        async with running_service() as running:
            await running.wait_health(SERVING)
            running.audio.mode = running.video.mode = "unavailable"
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await running.stub.Fuse(good_request(), timeout=60)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "no model server could answer" in error.value.details()
            assert "audio MODEL_UNAVAILABLE" in error.value.details() and "video MODEL_UNAVAILABLE" in error.value.details()
            await running.wait_health(NOT_SERVING)

            running.audio.mode = running.video.mode = "answer"
            await running.wait_health(SERVING)

            async def both_used() -> bool:
                reply = await running.stub.Fuse(good_request(), timeout=60)
                return reply.audio.status == pb.USED and reply.video.status == pb.USED

            await wait_until(both_used, "answers from both models again (circuit breakers closed)")

    asyncio.run(run())


def test_health_stays_not_serving_at_start_until_both_models_have_answered():
    async def run():
        async with running_service(video_mode="unavailable") as running:
            # Several health rounds with only the audio model ready: still not serving.
            for _ in range(5):
                await asyncio.sleep(0.1)
                assert await running.health() == NOT_SERVING
            running.video.mode = "answer"
            await running.wait_health(SERVING)

    asyncio.run(run())


def test_unavailable_is_retried_with_back_off_and_the_answer_still_comes():
    async def run():
        async with running_service(model_retries=2, model_retry_backoff_s=0.01) as running:
            await running.wait_health(SERVING)
            running.video.unavailable_next = 2
            calls_before = running.video.score_calls
            reply = await running.stub.Fuse(pb.FuseRequest(image=pb.Image(encoded=face_jpeg())), timeout=60)
            assert reply.video.status == pb.USED
            assert running.video.score_calls - calls_before == 3  # two failures, then the answer

    asyncio.run(run())


def test_a_retry_waits_its_back_off():
    async def run():
        async with running_service(model_retries=1, model_retry_backoff_s=0.3) as running:
            await running.wait_health(SERVING)
            running.video.unavailable_next = 1
            reply = await running.stub.Fuse(pb.FuseRequest(image=pb.Image(encoded=face_jpeg())), timeout=60)
            assert reply.video.status == pb.USED
            first, retry = running.video.score_call_times[-2:]
            assert retry - first >= 0.2  # gRPC jitters the 0.3 s back-off by at most 20 %

    asyncio.run(run())


def test_retries_stop_while_most_calls_fail():
    """gRPC's retry throttling: a server failing every call soon gets one attempt per call, not three."""

    async def run():
        async with running_service(
            model_retries=2, model_retry_backoff_s=0.01, model_breaker_failures=1000, model_check_interval_s=1.0
        ) as running:
            await running.wait_health(SERVING)
            running.video.unavailable_next = 1000
            attempts = []
            for _ in range(6):
                before = running.video.score_calls
                reply = await running.stub.Fuse(good_request(), timeout=60)
                assert reply.video.status == pb.MODEL_UNAVAILABLE
                attempts.append(running.video.score_calls - before)
            assert attempts[0] == 3 and attempts[-3:] == [1, 1, 1], attempts

    asyncio.run(run())


def test_a_hanging_model_server_is_skipped_instead_of_costing_every_call_its_deadline():
    async def run():
        async with running_service(predict_timeout_s=0.5, model_breaker_failures=2, model_breaker_open_s=60) as running:
            await running.wait_health(SERVING)
            request = pb.FuseRequest(image=pb.Image(encoded=face_jpeg()), audio=good_request().audio)
            running.video.mode = "hang"
            for _ in range(2):
                reply = await running.stub.Fuse(request, timeout=60)
                assert reply.video.status == pb.MODEL_UNAVAILABLE and "DEADLINE_EXCEEDED" in reply.video.reason
            calls = running.video.score_calls
            reply = await running.stub.Fuse(request, timeout=60)
            assert reply.video.status == pb.MODEL_UNAVAILABLE and "skipped" in reply.video.reason
            assert reply.audio.status == pb.USED
            assert running.video.score_calls == calls, "the open breaker still sent the call to the hanging server"

    asyncio.run(run())


def test_a_failing_model_server_is_skipped_by_the_circuit_breaker_then_tried_again():
    async def run():
        async with running_service(model_retries=0, model_breaker_failures=2, model_breaker_open_s=0.5) as running:
            await running.wait_health(SERVING)
            request = pb.FuseRequest(image=pb.Image(encoded=face_jpeg()), audio=good_request().audio)
            running.video.unavailable_next = 1000
            for _ in range(2):
                reply = await running.stub.Fuse(request, timeout=60)
                assert reply.video.status == pb.MODEL_UNAVAILABLE
            calls = running.video.score_calls
            reply = await running.stub.Fuse(request, timeout=60)
            assert reply.video.status == pb.MODEL_UNAVAILABLE and "skipped" in reply.video.reason
            assert reply.audio.status == pb.USED
            assert running.video.score_calls == calls, "the open breaker still sent the call to the server"

            running.video.unavailable_next = 0

            async def video_used() -> bool:
                return (await running.stub.Fuse(request, timeout=60)).video.status == pb.USED

            await wait_until(video_used, "the breaker's trial call to succeed")

    asyncio.run(run())


def test_a_client_deadline_bounds_the_model_call_and_cancels_it():
    async def run():
        async with running_service(predict_timeout_s=600) as running:
            await running.wait_health(SERVING)
            request = pb.FuseRequest(image=pb.Image(encoded=face_jpeg()))
            await running.stub.Fuse(request, timeout=60)  # warm-up: face detection ready
            running.video.mode = "hang"
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await running.stub.Fuse(request, timeout=8)
            assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            # The model call carried the caller's deadline, not the 600 s of --predict-timeout-s,
            # and was cancelled with the call.
            assert running.video.last_time_remaining < 60
            await asyncio.wait_for(running.video.predict_cancelled.wait(), timeout=60)

    asyncio.run(run())


def test_a_cancelled_call_stops_its_work():
    async def run():
        async with running_service(predict_timeout_s=600) as running:
            await running.wait_health(SERVING)
            running.video.mode = "hang"
            call = running.stub.Fuse(pb.FuseRequest(image=pb.Image(encoded=face_jpeg())))

            async def reached_model() -> bool:
                return running.video.score_calls > 0

            await wait_until(reached_model, "the call to reach the model server")
            call.cancel()
            await asyncio.wait_for(running.video.predict_cancelled.wait(), timeout=60)

    asyncio.run(run())


@pytest.mark.parametrize("method", ["Fuse", "StreamFuse"])
def test_bytes_that_are_not_a_protobuf_message_get_invalid_argument(method):
    async def run():
        async with running_service() as running:
            path = f"/emotion.v1.EmotionFusion/{method}"
            with pytest.raises(grpc.aio.AioRpcError) as error:
                if method == "Fuse":
                    await running.channel.unary_unary(path)(b"\xff\xff\xff", timeout=60)
                else:
                    call = running.channel.stream_stream(path)(iter([b"\xff\xff\xff"]), timeout=60)
                    async for _ in call:
                        pass
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a valid" in error.value.details() and "protobuf" in error.value.details()

    asyncio.run(run())


def test_a_request_without_audio_or_image_is_refused():
    async def run():
        async with running_service() as running:
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await running.stub.Fuse(pb.FuseRequest(options=pb.FusionOptions(audio_weight=1)), timeout=60)
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "neither audio nor image" in error.value.details()

    asyncio.run(run())


def test_shutdown_sends_running_streams_a_final_message_and_refuses_new_calls():
    async def run():
        async with running_service(shutdown_grace_s=30) as running:
            await running.wait_health(SERVING)
            stop_sending = asyncio.Event()

            async def live_input():
                yield pb.StreamRequest(config=pb.StreamConfig(result_rate_hz=10))
                sequence = 0
                while not stop_sending.is_set():
                    sequence += 1
                    yield pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=face_jpeg()), sequence=sequence))
                    yield pb.StreamRequest(audio=pb.AudioChunk(data=speech_pcm()[:3200]))
                    await asyncio.sleep(0.05)

            health_updates = health_pb2_grpc.HealthStub(running.channel).Watch(health_pb2.HealthCheckRequest())
            call = running.stub.StreamFuse(live_input())
            first = await call.read()
            assert not first.final
            stopping = asyncio.create_task(running.service.stop())
            responses = [first]
            while (response := await call.read()) != grpc.aio.EOF:
                responses.append(response)
            stop_sending.set()
            assert responses[-1].final and not any(r.final for r in responses[:-1])
            assert await call.code() == grpc.StatusCode.OK
            statuses = []
            async for update in health_updates:
                statuses.append(update.status)
                if update.status == NOT_SERVING:
                    break
            health_updates.cancel()
            assert statuses[0] == SERVING and statuses[-1] == NOT_SERVING
            await stopping
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await running.stub.Fuse(good_request(), timeout=10)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE

    asyncio.run(run())


def test_a_port_in_use_stops_the_service_with_a_message_not_a_traceback():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def start():
            await FusionService(Settings(host="127.0.0.1", port=port, metrics_port=0)).start()

        with pytest.raises(StartupError, match=f"could not listen on 127.0.0.1:{port}: is the port in use"):
            asyncio.run(start())
        with pytest.raises(SystemExit) as exit_:
            main(["--host", "127.0.0.1", "--port", str(port), "--metrics-port", "0"])
    assert str(exit_.value.code).startswith("fusion service cannot start: could not listen")


def test_unusable_tokens_stop_the_service_with_a_message(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("# no token yet\n")

    async def construct():
        FusionService(Settings(host="127.0.0.1", port=0, metrics_port=0, auth_tokens_file=str(tokens)))

    with pytest.raises(StartupError, match="authentication: .* holds no token"):
        asyncio.run(construct())
    with pytest.raises(SystemExit) as exit_:
        main(["--host", "127.0.0.1", "--port", "0", "--metrics-port", "0", "--auth-tokens-file", str(tokens)])
    assert "fusion service cannot start: authentication" in str(exit_.value.code)
