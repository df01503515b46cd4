"""Thousands of generated malformed requests (hypothesis) against a running fusion service process: each
gets INVALID_ARGUMENT (RESOURCE_EXHAUSTED when over the size limit) with a message, and afterwards the
service answers a good request exactly as before, with its memory not grown beyond noise."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Callable

import grpc
import numpy as np
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from testkit.media import jpeg, jpeg_header, png_header
from testkit.waiting import WAIT_S
from tests.integration.helpers import fuse_request

MAX_MESSAGE_BYTES = 512 * 1024
MAX_AUDIO_SECONDS = 10.0
UNARY_EXAMPLES, RAW_EXAMPLES, STREAM_EXAMPLES = 1600, 400, 400
WARM_UP_EXAMPLES = 160
# RSS growth allowed after the warm-up: allocator noise, not a leak of even 1 kB per request (3 MB here).
RSS_NOISE_BYTES = 16 * 1024 * 1024

HYPOTHESIS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


# ---------------------------------------------------------------- building blocks

GOOD_JPEG = jpeg(np.full((64, 64, 3), 128, dtype=np.uint8))
sides = st.integers(0, 2**32 - 1)
too_small_side = st.integers(0, 15)
huge_side = st.integers(20_000, 2**16 - 1)

bad_encoded = st.one_of(
    st.binary(max_size=64).filter(lambda b: not b.startswith((b"\x89PNG", b"\xff\xd8"))),  # not JPEG or PNG
    st.builds(lambda w, h: png_header(w, h), too_small_side, st.integers(16, 100)),  # 1x1 ... 15xN
    st.builds(lambda w, h: png_header(w, h), huge_side, huge_side),  # 20000x20000 and up
    st.builds(lambda w, h: jpeg_header(w, h), st.integers(16, 100), too_small_side),
    st.builds(lambda w, h: jpeg_header(w, h), huge_side, huge_side),
    st.integers(1, 40).map(lambda n: GOOD_JPEG[:n]),  # cut before its frame header
    st.binary(min_size=1, max_size=200).map(lambda tail: b"\x89PNG\r\n\x1a\n" + tail[:10]),  # no IHDR
    st.just(b""),
)


@st.composite
def bad_raw_frame(draw) -> pb.RawFrame:
    kind = draw(st.sampled_from(["format", "size", "bytes"]))
    if kind == "format":
        return pb.RawFrame(width=32, height=32, format=draw(st.sampled_from([0, 3, 77, 2**31 - 1])), data=bytes(32 * 32))
    if kind == "size":
        width, height = draw(st.one_of(st.tuples(too_small_side, sides), st.tuples(sides, too_small_side),
                                       st.tuples(huge_side, huge_side)))
        return pb.RawFrame(width=width, height=height, format=pb.GRAY8)
    width, height = draw(st.integers(16, 64)), draw(st.integers(16, 64))
    channels = draw(st.sampled_from([1, 3]))
    size = draw(st.integers(0, width * height * channels * 2).filter(lambda n: n != width * height * channels))
    return pb.RawFrame(width=width, height=height, format=pb.GRAY8 if channels == 1 else pb.BGR8, data=bytes(size))


bad_image = st.one_of(
    st.builds(lambda data: pb.Image(encoded=data), bad_encoded),
    st.builds(lambda raw: pb.Image(raw=raw), bad_raw_frame()),
    st.just(pb.Image()),  # neither encoded nor raw
)


@st.composite
def bad_audio(draw) -> pb.Audio:
    kind = draw(st.sampled_from(["encoding", "rate", "odd", "not finite", "too long", "empty"]))
    rate = draw(st.integers(8_000, 192_000))
    if kind == "encoding":
        return pb.Audio(encoding=draw(st.sampled_from([0, 3, 4, 99, 2**31 - 1])), sample_rate_hz=rate, data=bytes(64))
    if kind == "rate":
        bad_rate = draw(st.one_of(st.integers(0, 7_999), st.integers(192_001, 2**32 - 1)))
        return pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=bad_rate, data=bytes(64))
    if kind == "odd":
        encoding, width = draw(st.sampled_from([(pb.PCM_S16LE, 2), (pb.PCM_F32LE, 4)]))
        size = draw(st.integers(1, 4000).filter(lambda n: n % width))
        return pb.Audio(encoding=encoding, sample_rate_hz=rate, data=bytes(size))
    if kind == "not finite":
        samples = np.zeros(draw(st.integers(1, 2000)), dtype="<f4")
        positions = draw(st.lists(st.integers(0, len(samples) - 1), min_size=1, max_size=5))
        samples[positions] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        return pb.Audio(encoding=pb.PCM_F32LE, sample_rate_hz=rate, data=samples.tobytes())
    if kind == "too long":
        low_rate = draw(st.integers(8_000, 12_000))
        samples = int(MAX_AUDIO_SECONDS * low_rate) + draw(st.integers(1, low_rate))
        return pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=low_rate, data=bytes(2 * samples))
    return pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=rate)


weight = st.floats(min_value=0, max_value=10)
bad_weight = st.one_of(st.floats(max_value=-1e-6), st.sampled_from([math.nan, math.inf, -math.inf]))


@st.composite
def bad_options(draw) -> pb.FusionOptions:
    kind = draw(st.sampled_from(["audio weight", "video weight", "both zero", "modality"]))
    if kind == "audio weight":
        return pb.FusionOptions(audio_weight=draw(bad_weight), video_weight=draw(weight))
    if kind == "video weight":
        return pb.FusionOptions(video_weight=draw(bad_weight))
    if kind == "both zero":
        return pb.FusionOptions(audio_weight=0, video_weight=0)
    unknown = draw(st.lists(st.integers(3, 2**31 - 1) | st.just(0), min_size=1, max_size=3))
    return pb.FusionOptions(modalities=[*draw(st.lists(st.sampled_from([pb.AUDIO, pb.VIDEO]), max_size=2)), *unknown])


GOOD_AUDIO = pb.Audio(encoding=pb.PCM_S16LE, sample_rate_hz=16_000, data=bytes(3200))
GOOD_IMAGE = pb.Image(encoded=GOOD_JPEG)


@st.composite
def malformed_fuse_request(draw) -> pb.FuseRequest:
    """A request with at least one defect; every other field valid or absent."""
    defect = draw(st.sampled_from(["audio", "image", "options", "nothing", "too large"]))
    request = pb.FuseRequest()
    if defect == "nothing":
        if draw(st.booleans()):
            request.options.CopyFrom(pb.FusionOptions(audio_weight=draw(weight)))
        return request
    if defect == "too large":
        request.image.encoded = GOOD_JPEG + bytes(MAX_MESSAGE_BYTES + draw(st.integers(0, 1000)))
        return request
    if defect == "audio" or draw(st.booleans()):
        request.audio.CopyFrom(draw(bad_audio()) if defect == "audio" else GOOD_AUDIO)
    if defect == "image" or draw(st.booleans()):
        request.image.CopyFrom(draw(bad_image) if defect == "image" else GOOD_IMAGE)
    if defect == "options":
        request.options.CopyFrom(draw(bad_options()))
        if not request.HasField("audio") and not request.HasField("image"):
            request.image.CopyFrom(GOOD_IMAGE)
    return request


def bad_stream_message():
    return st.one_of(
        st.builds(lambda a: pb.StreamRequest(config=pb.StreamConfig(audio_encoding=a)), st.sampled_from([3, 99])),
        st.builds(lambda r: pb.StreamRequest(config=pb.StreamConfig(audio_sample_rate_hz=r)),
                  st.one_of(st.integers(1, 7_999), st.integers(192_001, 2**32 - 1))),
        st.builds(lambda r: pb.StreamRequest(config=pb.StreamConfig(result_rate_hz=r)),
                  st.one_of(st.floats(max_value=-1e-3), st.floats(min_value=30.5, max_value=1e30),
                            st.sampled_from([math.nan, math.inf]))),
        st.builds(lambda o: pb.StreamRequest(config=pb.StreamConfig(options=o)), bad_options()),
        st.builds(lambda n: pb.StreamRequest(audio=pb.AudioChunk(data=bytes(n))), st.integers(0, 999).map(lambda n: 2 * n + 1)),
        st.builds(lambda n: pb.StreamRequest(audio=pb.AudioChunk(data=bytes(2 * n))), st.integers(32_001, 40_000)),
        st.builds(lambda i: pb.StreamRequest(frame=pb.Frame(image=i, sequence=1)), bad_image),
        st.just(pb.StreamRequest(frame=pb.Frame(sequence=1))),  # no image
        st.just(pb.StreamRequest()),  # no payload
    )


@st.composite
def malformed_stream(draw) -> list[pb.StreamRequest]:
    """Valid messages (that produce no model call), then one malformed message."""
    messages = []
    if draw(st.booleans()):
        messages.append(pb.StreamRequest(config=pb.StreamConfig(audio_sample_rate_hz=16_000)))
    messages += [pb.StreamRequest(audio=pb.AudioChunk(data=bytes(640)))] * draw(st.integers(0, 2))
    bad = draw(bad_stream_message())
    if bad.WhichOneof("payload") == "config" and not messages and draw(st.booleans()):
        # A config that would be valid as a first message is still wrong after another message.
        messages.append(pb.StreamRequest(audio=pb.AudioChunk(data=bytes(640))))
        bad = pb.StreamRequest(config=pb.StreamConfig())
    return [*messages, bad]


# ---------------------------------------------------------------- the test

def hammer(strategy: st.SearchStrategy, throw: Callable[[object], None], examples: int) -> None:
    """Run `throw` on `examples` values drawn from `strategy`."""

    @settings(HYPOTHESIS, max_examples=examples)
    @given(strategy)
    def run(value) -> None:
        throw(value)

    run()


def test_thousands_of_malformed_requests_get_clear_errors_and_leave_the_service_as_it_was(start_fusion, capsys):
    stack = start_fusion(f"--max-message-bytes={MAX_MESSAGE_BYTES}", f"--max-audio-seconds={MAX_AUDIO_SECONDS}")
    pid = stack.processes["fusion"].pid
    tried = {"unary": 0, "raw bytes": 0, "stream": 0}

    with grpc.insecure_channel(stack.fusion_target) as channel:
        fusion = emotion_pb2_grpc.EmotionFusionStub(channel)
        raw_fuse = channel.unary_unary("/emotion.v1.EmotionFusion/Fuse")
        good = fuse_request()
        reference = fusion.Fuse(good, timeout=WAIT_S)
        assert reference.audio.status == pb.USED and reference.video.status == pb.USED

        def refused(call, expected: tuple[grpc.StatusCode, ...] = (grpc.StatusCode.INVALID_ARGUMENT,)) -> grpc.RpcError:
            try:
                call()
            except grpc.RpcError as error:
                assert error.code() in expected, f"{error.code()}: {error.details()}"
                assert error.details(), "an error without a message"
                return error
            raise AssertionError("a malformed request was answered")

        def throw_unary(request: pb.FuseRequest) -> None:
            tried["unary"] += 1
            too_large = request.ByteSize() > MAX_MESSAGE_BYTES
            error = refused(
                lambda: fusion.Fuse(request, timeout=WAIT_S),
                (grpc.StatusCode.RESOURCE_EXHAUSTED,) if too_large else (grpc.StatusCode.INVALID_ARGUMENT,),
            )
            if not too_large:  # the message names the field at fault
                assert re.match(r"(audio|image|options|request)\b", error.details()), error.details()

        def throw_raw(data: bytes) -> None:
            tried["raw bytes"] += 1
            try:
                pb.FuseRequest.FromString(data)
            except DecodeError:
                error = refused(lambda: raw_fuse(data, timeout=WAIT_S))
                assert "not a valid" in error.details()
                return
            # Bytes that happen to parse as a request: refused or answered, never another failure.
            try:
                raw_fuse(data, timeout=WAIT_S)
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{error.code()}: {error.details()}"

        def throw_stream(messages: list[pb.StreamRequest]) -> None:
            tried["stream"] += 1
            error = refused(lambda: list(fusion.StreamFuse(iter(messages), timeout=WAIT_S)))
            assert re.match(r"(config|audio chunk|frame|options|stream message)\b", error.details()), error.details()

        hammer(malformed_fuse_request(), throw_unary, WARM_UP_EXAMPLES)
        hammer(malformed_stream(), throw_stream, WARM_UP_EXAMPLES // 4)
        rss_start = rss_bytes(pid)
        hammer(malformed_fuse_request(), throw_unary, UNARY_EXAMPLES)
        hammer(st.binary(max_size=300), throw_raw, RAW_EXAMPLES)
        hammer(malformed_stream(), throw_stream, STREAM_EXAMPLES)
        rss_end = rss_bytes(pid)

        after = fusion.Fuse(good, timeout=WAIT_S)
        assert after.audio.status == pb.USED and after.video.status == pb.USED
        for field in ("fused", "faces"):
            assert getattr(after, field) == getattr(reference, field)
        assert after.top_emotion == reference.top_emotion

    total = sum(tried.values())
    with capsys.disabled():
        print(f"\nmalformed requests tried: {total} ({tried}); fusion RSS {rss_start / 2**20:.1f} MiB after warm-up, "
              f"{rss_end / 2**20:.1f} MiB at the end")
    assert total >= 2000
    assert rss_end - rss_start < RSS_NOISE_BYTES, f"RSS grew by {(rss_end - rss_start) / 2**20:.1f} MiB"
