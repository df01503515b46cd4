"""The web gateway against a stand-in fusion service: relaying, reconnecting, and refusing bad input."""

from __future__ import annotations

import asyncio
import json
import struct

import aiohttp
import grpc
import numpy as np
import pytest

from capture_client.outbox import jpeg
from capture_client.web.gateway import Limits
from capture_client.web.protocol import AUDIO, FRAME, MAX_FRAME_BYTES, RateLimit, parse_config
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, LABELS
from tests.client.web_stand_in import EchoFusion, Harness

FRAME_JPEG = jpeg(np.full((48, 64, 3), 128, np.uint8))


def frame_message(sequence: int, image: bytes = FRAME_JPEG) -> bytes:
    return bytes([FRAME]) + struct.pack("<I", sequence) + image


def audio_message(samples: int = 320) -> bytes:
    return bytes([AUDIO]) + np.zeros(samples, "<i2").tobytes()


async def next_of_type(ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float = 5.0) -> dict:
    while True:
        message = await ws.receive(timeout=timeout)
        assert message.type == aiohttp.WSMsgType.TEXT, f"stream closed: {message}"
        data = json.loads(message.data)
        if data["type"] == kind:
            return data


async def close_of(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> tuple[int, str]:
    while True:
        message = await ws.receive(timeout=timeout)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code, message.extra or ""


def run(coroutine) -> None:
    asyncio.run(asyncio.wait_for(coroutine, 30))


def test_frames_and_audio_reach_the_service_and_results_come_back():
    async def scenario():
        async with Harness(EchoFusion(), Limits()) as harness:
            ws = await harness.open()
            assert (await next_of_type(ws, "status"))["state"] == "connecting"
            await ws.send_bytes(audio_message(320))
            await ws.send_bytes(frame_message(7))
            result = await next_of_type(ws, "result")
            assert result["result"]["frame_sequence"] == "7"  # proto3 JSON: 64-bit integers are strings
            assert result["result"]["result"]["top_emotion"] == "happy"
            (requests,) = harness.fusion.streams
            config = requests[0].config
            assert (config.audio_encoding, config.audio_sample_rate_hz, config.result_rate_hz) == (pb.PCM_S16LE, 16000, 10)
            assert requests[1].audio.data == np.zeros(320, "<i2").tobytes()
            assert requests[2].frame.image.encoded == FRAME_JPEG and requests[2].frame.sequence == 7
            await ws.close()

    run(scenario())


def test_a_mode_becomes_the_streams_modalities():
    async def scenario():
        async with Harness(EchoFusion(), Limits()) as harness:
            ws = await harness.open(settings={"type": "config", "mode": "video"})
            await ws.send_bytes(frame_message(1))
            await next_of_type(ws, "result")
            assert list(harness.fusion.streams[0][0].config.options.modalities) == [pb.VIDEO]

    run(scenario())


def test_a_page_of_another_site_cannot_open_a_stream():
    async def scenario():
        async with Harness(EchoFusion(), Limits()) as harness:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await harness.open(origin="https://evil.example")
            assert refused.value.status == 403
            assert harness.fusion.streams == []

    run(scenario())


@pytest.mark.parametrize(
    ("first", "then", "code", "reason"),
    [
        ("not json", None, 1003, "JSON"),
        (json.dumps({"type": "config", "mode": "smell"}), None, 1003, "mode must be one of"),
        (json.dumps({"type": "config"}), bytes([9, 1, 2]), 1003, "unknown message kind 9"),
        (json.dumps({"type": "config"}), bytes([AUDIO, 1, 2, 3]), 1003, "whole 16-bit samples"),
        (json.dumps({"type": "config"}), bytes([FRAME]) + struct.pack("<I", 1) + b"GIF89a", 1003, "JPEG"),
        (json.dumps({"type": "config"}), "second settings", 1008, "settings come once"),
    ],
)
def test_malformed_input_is_closed_with_a_reason(first, then, code, reason):
    async def scenario():
        async with Harness(EchoFusion(), Limits()) as harness:
            ws = await harness.session.ws_connect(harness.http.make_url("/ws"))
            await ws.send_str(first)
            if isinstance(then, bytes):
                await ws.send_bytes(then)
            elif then is not None:
                await ws.send_str(then)
            close_code, close_reason = await close_of(ws)
            assert close_code == code and reason in close_reason

    run(scenario())


def test_an_oversized_message_is_closed_as_too_big():
    async def scenario():
        async with Harness(EchoFusion(), Limits()) as harness:
            ws = await harness.open()
            await ws.send_bytes(frame_message(1, b"\xff\xd8" + bytes(MAX_FRAME_BYTES + 1024)))
            close_code, _ = await close_of(ws)
            assert close_code == 1009

    run(scenario())


def test_a_flood_is_closed_and_other_streams_go_on():
    async def scenario():
        async with Harness(EchoFusion(), Limits(max_frames_per_s=10, burst_s=1)) as harness:
            calm = await harness.open()
            flood = await harness.open()
            for sequence in range(1, 60):
                await flood.send_bytes(frame_message(sequence))
            close_code, close_reason = await close_of(flood)
            assert close_code == 1008 and "frames per second" in close_reason
            for sequence in (1, 2, 3):
                await calm.send_bytes(frame_message(sequence))
                assert (await next_of_type(calm, "result"))["result"]["frame_sequence"] == str(sequence)
                await asyncio.sleep(0.15)

    run(scenario())


def test_the_stream_is_reopened_when_the_service_ends_it():
    async def scenario():
        async with Harness(EchoFusion(end_after=2), Limits()) as harness:
            ws = await harness.open()
            for sequence in (1, 2):
                await ws.send_bytes(frame_message(sequence))
                await next_of_type(ws, "result")
            status = await next_of_type(ws, "status")
            while status["state"] != "reconnecting":
                status = await next_of_type(ws, "status")
            assert "shutting down" in status["detail"]
            assert (await next_of_type(ws, "status"))["state"] == "connected"
            await ws.send_bytes(frame_message(3))
            assert (await next_of_type(ws, "result"))["result"]["frame_sequence"] == "3"
            assert len(harness.fusion.streams) == 2
            assert harness.fusion.streams[1][0].HasField("config")  # a new call starts with the settings again

    run(scenario())


def test_a_stream_the_service_refuses_for_good_is_closed_with_the_reason():
    async def scenario():
        async with Harness(EchoFusion(refuse_with=grpc.StatusCode.UNAUTHENTICATED), Limits()) as harness:
            ws = await harness.open()
            close_code, close_reason = await close_of(ws)
            assert close_code == 1011 and "credentials" in close_reason

    run(scenario())


def test_settings_default_to_both_modalities_and_the_services_rate():
    config = parse_config(json.dumps({"type": "config"}))
    assert list(config.options.modalities) == [] and config.result_rate_hz == 0


def test_rate_limit_allows_bursts_then_the_average_rate():
    limit = RateLimit(rate=10, burst=5)
    assert all(limit.allow(now=0.0) for _ in range(5))
    assert not limit.allow(now=0.0)
    assert limit.allow(now=0.1) and not limit.allow(now=0.1)


def test_the_page_takes_the_apis_labels_and_audio_rate_from_the_gateway():
    async def scenario():
        async with Harness(EchoFusion()) as harness:
            async with harness.session.get(harness.http.make_url("/api/constants")) as reply:
                constants = await reply.json()
            assert constants["labels"] == list(LABELS)
            assert constants["audio_sample_rate_hz"] == AUDIO_SAMPLE_RATE_HZ
            async with harness.session.get(harness.http.make_url("/static/app.js")) as reply:
                script = await reply.text()
            assert "/api/constants" in script and '"angry"' not in script  # nothing of the API repeated

    run(scenario())
