"""The service's Prometheus metrics, read from prometheus_client's registry around real calls."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from prometheus_client import REGISTRY

from fusion_service.metrics import Stage
from fusion_service.rpc_metrics import CallStatusInterceptor
from fusion_service.server import SERVING
from protos.emotion.v1 import emotion_pb2 as pb
from testkit.media import face_photo, jpeg
from tests.service.harness import face_jpeg, good_request, running_service, speech_pcm, wait_until

SERVICE = "emotion.v1.EmotionFusion"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def modality_results(modality: str) -> float:
    """Analyses of `modality` counted so far, whatever their status."""
    return sum(
        s.value
        for metric in REGISTRY.collect() if metric.name == "fusion_modality_results"
        for s in metric.samples if s.name.endswith("_total") and s.labels["modality"] == modality
    )


def calls(method: str, code: grpc.StatusCode, service: str = SERVICE) -> float:
    return sample("fusion_rpc_calls_total", service=service, method=method, code=code.name)


def test_a_fuse_call_counts_one_result_per_modality_and_its_ok_status():
    async def run():
        async with running_service() as running:
            await running.wait_health(SERVING)
            used_before = {m: sample("fusion_modality_results_total", modality=m, status="USED") for m in ("audio", "video")}
            totals_before = {m: modality_results(m) for m in ("audio", "video")}
            ok_before = calls("Fuse", grpc.StatusCode.OK)
            await running.stub.Fuse(good_request(), timeout=60)
            for modality in ("audio", "video"):
                assert sample("fusion_modality_results_total", modality=modality, status="USED") == used_before[modality] + 1
                assert modality_results(modality) == totals_before[modality] + 1
            assert calls("Fuse", grpc.StatusCode.OK) == ok_before + 1

    asyncio.run(run())


def test_a_stream_counts_each_analysis_once_not_each_response_built_from_it():
    async def run():
        async with running_service() as running:
            await running.wait_health(SERVING)
            requests: asyncio.Queue[pb.StreamRequest | None] = asyncio.Queue()

            async def send():
                while (request := await requests.get()) is not None:
                    yield request

            stream = running.stub.StreamFuse(send(), timeout=60)
            audio_before, video_before = modality_results("audio"), modality_results("video")
            repeated_before = sample("fusion_repeated_frames_total", reused="outcome")
            await requests.put(pb.StreamRequest(audio=pb.AudioChunk(data=speech_pcm())))
            responses = [await stream.read()]
            # An image, the same again (a stream's first frame is searched whole, so its repeat keeps its outcome:
            # repeated_frames.py), then another image.
            for sequence, image in enumerate((face_jpeg(), face_jpeg(), jpeg(face_photo(), quality=80)), 1):
                await requests.put(pb.StreamRequest(frame=pb.Frame(image=pb.Image(encoded=image), sequence=sequence)))
                responses.append(await stream.read())
            running.service.servicer.close_streams()
            responses.append(await stream.read())
            assert responses[-1].final and len(responses) == 5
            # One audio window and two frames were analysed; the other responses repeated those outcomes.
            assert modality_results("audio") == audio_before + 1
            assert modality_results("video") == video_before + 2
            assert sample("fusion_repeated_frames_total", reused="outcome") == repeated_before + 1
            assert await stream.code() == grpc.StatusCode.OK

    asyncio.run(run())


def test_refused_and_timed_out_calls_are_counted_under_their_status_code():
    async def run():
        async with running_service(auth_tokens="alpha", predict_timeout_s=600) as running:
            await running.wait_health(SERVING)
            token = (("authorization", "Bearer alpha"),)
            image_only = pb.FuseRequest(image=pb.Image(encoded=face_jpeg()))
            await running.stub.Fuse(image_only, metadata=token, timeout=60)  # warm-up: face detection ready
            before = {code: calls("Fuse", code) for code in grpc.StatusCode}

            expected = [
                (grpc.StatusCode.INVALID_ARGUMENT, pb.FuseRequest(), token, 60),  # neither audio nor image
                (grpc.StatusCode.UNAUTHENTICATED, image_only, (), 60),
                (grpc.StatusCode.DEADLINE_EXCEEDED, image_only, token, 3),  # the video model hangs
            ]
            running.video.mode = "hang"
            for code, request, metadata, timeout in expected:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await running.stub.Fuse(request, metadata=metadata, timeout=timeout)
                assert error.value.code() == code

            def counted() -> dict[grpc.StatusCode, float]:
                return {c: calls("Fuse", c) - before[c] for c in grpc.StatusCode if calls("Fuse", c) != before[c]}

            async def all_counted() -> bool:
                return sum(counted().values()) >= len(expected)

            await wait_until(all_counted, "the three calls to be counted")  # a handler cancelled by its deadline ends later
            assert counted() == {code: 1 for code, *_ in expected}

    asyncio.run(run())


def test_every_stage_is_timed_under_its_shared_name():
    async def run():
        async with running_service() as running:
            await running.wait_health(SERVING)
            before = {stage: sample("fusion_stage_seconds_count", stage=stage.value) for stage in Stage}
            await running.stub.Fuse(good_request(), timeout=60)
            for stage in Stage:
                assert sample("fusion_stage_seconds_count", stage=stage.value) > before[stage], stage

    asyncio.run(run())


async def _raise(request, context):
    raise RuntimeError("a bug")


async def _abort(request, context):
    await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not now")


async def _endless(request, context):
    yield b"first"
    await asyncio.Event().wait()


@pytest.mark.parametrize(
    "method, code",
    [
        ("Raise", grpc.StatusCode.UNKNOWN),
        ("Abort", grpc.StatusCode.FAILED_PRECONDITION),
        ("EndlessPastDeadline", grpc.StatusCode.DEADLINE_EXCEEDED),
        ("EndlessCancelled", grpc.StatusCode.CANCELLED),
    ],
)
def test_the_interceptor_records_exceptions_aborts_deadlines_and_cancellations(method, code):
    async def run():
        server = grpc.aio.server(interceptors=[CallStatusInterceptor()])
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Probe", {
            "Raise": grpc.unary_unary_rpc_method_handler(_raise),
            "Abort": grpc.unary_unary_rpc_method_handler(_abort),
            "EndlessPastDeadline": grpc.unary_stream_rpc_method_handler(_endless),
            "EndlessCancelled": grpc.unary_stream_rpc_method_handler(_endless),
        }),))
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        before = calls(method, code, service="test.Probe")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                path = f"/test.Probe/{method}"
                if method.startswith("Endless"):
                    call = channel.unary_stream(path)(b"", timeout=0.5 if method == "EndlessPastDeadline" else 60)
                    assert await call.read() == b"first"
                    if code == grpc.StatusCode.CANCELLED:
                        call.cancel()
                    else:
                        assert await call.code() == code
                else:
                    with pytest.raises(grpc.aio.AioRpcError) as error:
                        await channel.unary_unary(path)(b"", timeout=60)
                    assert error.value.code() == code

                async def counted() -> bool:
                    return calls(method, code, service="test.Probe") == before + 1

                await wait_until(counted, f"{method} counted under {code.name}")
        finally:
            await server.stop(0)

    asyncio.run(run())
