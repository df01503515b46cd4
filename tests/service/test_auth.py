import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from fusion_service.auth import TokenAuthInterceptor, TokenError, bearer_token, load_tokens
from protos.emotion.v1 import emotion_pb2 as pb
from tests.service.harness import face_jpeg, running_service


def test_tokens_come_from_a_file_and_a_list(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# team tokens\nalpha\n\n  beta  \n")
    assert load_tokens(str(path), "gamma, delta,") == {"alpha", "beta", "gamma", "delta"}
    assert load_tokens("", "") == frozenset()


def test_unusable_tokens_are_refused_without_showing_them(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n")
    with pytest.raises(TokenError, match="holds no token"):
        load_tokens(str(empty))
    with pytest.raises(TokenError, match="token number 2") as error:
        load_tokens("", "fine,se\x07cret")
    assert "se\x07cret" not in str(error.value)


@pytest.mark.parametrize(
    "metadata, token",
    [
        ((("authorization", "Bearer abc"),), "abc"),
        ((("x-request-id", "1"), ("authorization", "bearer abc")), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((), None),
    ],
)
def test_bearer_token_is_read_from_the_authorization_entry(metadata, token):
    assert bearer_token(metadata) == token


def test_only_exact_tokens_are_accepted():
    interceptor = TokenAuthInterceptor(frozenset({"alpha", "beta"}))
    assert interceptor.accepts("alpha") and interceptor.accepts("beta")
    assert not any(interceptor.accepts(t) for t in ("alph", "alphaa", "ALPHA", "", None))


def test_calls_need_a_valid_token_but_health_and_reflection_do_not(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("from-file\n")

    async def run():
        async with running_service(auth_tokens_file=str(path), auth_tokens="from-env") as running:
            request = pb.FuseRequest(image=pb.Image(encoded=face_jpeg()))
            for metadata in [(), (("authorization", "Bearer wrong"),), (("authorization", "from-file"),)]:
                with pytest.raises(grpc.aio.AioRpcError) as error:
                    await running.stub.Fuse(request, metadata=metadata, timeout=60)
                assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "Bearer <token>" in error.value.details()
                stream = running.stub.StreamFuse(iter([pb.StreamRequest(config=pb.StreamConfig())]), metadata=metadata)
                assert await stream.code() == grpc.StatusCode.UNAUTHENTICATED

            for token in ("from-file", "from-env"):
                reply = await running.stub.Fuse(request, metadata=(("authorization", f"Bearer {token}"),), timeout=60)
                assert reply.video.status == pb.USED
                stream = running.stub.StreamFuse(
                    iter([pb.StreamRequest(config=pb.StreamConfig())]), metadata=(("authorization", f"Bearer {token}"),)
                )
                assert await stream.code() == grpc.StatusCode.OK

            health = await health_pb2_grpc.HealthStub(running.channel).Check(health_pb2.HealthCheckRequest(), timeout=60)
            assert health.status in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)
            reflection = reflection_pb2_grpc.ServerReflectionStub(running.channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")])
            )
            reply = await reflection.read()
            assert "emotion.v1.EmotionFusion" in {s.name for s in reply.list_services_response.service}

    asyncio.run(run())
