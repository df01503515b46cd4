import asyncio

import grpc
import pytest

from fusion_service.limits import LimitExceeded, StreamLimiter, peer_host
from protos.emotion.v1 import emotion_pb2 as pb
from tests.service.harness import face_jpeg, running_service


@pytest.mark.parametrize(
    "peer, host",
    [("ipv4:10.0.0.7:51234", "10.0.0.7"), ("ipv6:[::1]:51234", "[::1]"), ("unix:/run/socket", "unix:/run/socket")],
)
def test_a_client_is_its_address_without_the_port(peer, host):
    assert peer_host(peer) == host


def test_limiter_counts_streams_per_client_and_frees_slots():
    limiter = StreamLimiter(per_client=2)
    with limiter.stream("a"), limiter.stream("a"):
        with pytest.raises(LimitExceeded, match="2 streams open"):
            with limiter.stream("a"):
                pass
        with limiter.stream("b"):
            assert limiter.open_streams("b") == 1
    assert limiter.open_streams("a") == 0
    with StreamLimiter(per_client=0).stream("a"):  # 0: no limit
        pass


def open_stream(stub, hold: asyncio.Event, metadata=()):
    """A stream that sends a config, then waits for `hold` before it ends."""

    async def requests():
        yield pb.StreamRequest(config=pb.StreamConfig())
        await hold.wait()

    return stub.StreamFuse(requests(), metadata=metadata)


async def first_to_end(calls):
    waiting = {asyncio.ensure_future(call.code()): call for call in calls}
    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    assert len(done) == 1
    return waiting[done.pop()]


def test_one_client_cannot_hold_more_streams_than_the_limit():
    async def run():
        async with running_service(max_streams_per_client=2) as running:
            hold = asyncio.Event()
            calls = [open_stream(running.stub, hold) for _ in range(3)]
            # Streams have no order among themselves: whichever came last is refused; the others stay open.
            ended = await first_to_end(calls)
            assert await ended.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "--max-streams-per-client=2" in await ended.details()
            hold.set()
            for call in calls:
                if call is not ended:
                    assert await call.code() == grpc.StatusCode.OK
            # Slots are given back when streams end.
            again = [open_stream(running.stub, hold) for _ in range(2)]
            assert [await call.code() for call in again] == [grpc.StatusCode.OK] * 2

    asyncio.run(run())


def test_with_authentication_each_token_is_its_own_client():
    async def run():
        async with running_service(max_streams_per_client=1, auth_tokens="alpha,beta") as running:
            hold = asyncio.Event()
            alpha = [open_stream(running.stub, hold, (("authorization", "Bearer alpha"),)) for _ in range(2)]
            beta = open_stream(running.stub, hold, (("authorization", "Bearer beta"),))
            ended = await first_to_end([*alpha, beta])
            assert ended in alpha and await ended.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            hold.set()
            assert await beta.code() == grpc.StatusCode.OK

    asyncio.run(run())


def test_a_message_over_the_size_limit_gets_resource_exhausted():
    async def run():
        async with running_service(max_message_bytes=256 * 1024) as running:
            big = pb.FuseRequest(image=pb.Image(encoded=face_jpeg() + b"\0" * 256 * 1024))
            with pytest.raises(grpc.aio.AioRpcError) as error:
                await running.stub.Fuse(big, timeout=60)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "larger than max" in error.value.details()
            reply = await running.stub.Fuse(pb.FuseRequest(image=pb.Image(encoded=face_jpeg())), timeout=60)
            assert reply.video.status == pb.USED

    asyncio.run(run())
