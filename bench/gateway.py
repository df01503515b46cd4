"""The web gateway's cost: latency it adds to a stream result, and CPU per browser-like stream.

Streams go through the gateway exactly as the page sends them (bench.live's frames and 100 ms audio chunks, in
capture_client.web.protocol's messages) and, for comparison, straight to the fusion service over gRPC, back to
back on the same stack. Latency of frame s, as in bench.live: the first result including s - the moment s was
handed to the socket.

    python -m bench.gateway            # its own stack on free ports; prints the figures as JSON
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

from bench import live
from bench.cold_start import SERVICE_ENVIRONMENT
from bench.machine import cpu_seconds
from bench.media import Media
from bench.stats import summarise
from capture_client.web.protocol import AUDIO, FRAME
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1.constants import MAX_RESULT_RATE_HZ
from scripts.local_stack import ROOT, LocalStack, free_port

LATENCY_SECONDS = 30.0
LATENCY_ROUNDS = 2  # direct and gateway alternated, to spread a busy moment of the machine over both
# Results at the API's highest rate while measuring the added latency: a frame then waits at most 33 ms for the
# stream's next result instead of up to 200 ms at the default 5 Hz, a wait that is the same with and without
# the gateway but made the difference of the two medians swing by several ms from run to run.
LATENCY_RESULT_RATE_HZ = MAX_RESULT_RATE_HZ
# A stream each way first, not counted: the first streams after the stack starts were slower (a run whose
# first, direct, stream was measured cold read -10.9 ms "added").
WARM_UP_SECONDS = 5.0
CONCURRENT_STREAMS = 8
HOLD_SECONDS = 60.0
_SEQUENCE = struct.Struct("<I")


async def run_ws_stream(url: str, media: Media, plan: live.StreamPlan, log: live.StreamLog,
                        abort: asyncio.Event | None = None) -> live.StreamLog:
    """One stream through the gateway, as the page sends it; fills log like bench.live.run_stream."""
    chunks = [bytes([AUDIO]) + chunk for chunk in media.speech_chunks_pcm16(plan.audio_chunk_seconds)]
    frames = media.camera_frames_jpeg
    origin = url.replace("ws://", "http://").rsplit("/", 1)[0]
    try:
        async with aiohttp.ClientSession() as session, session.ws_connect(url, headers={"Origin": origin}) as ws:
            await ws.send_str(json.dumps({"type": "config", "mode": "both", "result_rate_hz": plan.result_rate_hz}))
            reader = asyncio.create_task(_read(ws, log))
            async for kind, number in live.paced_input(media, plan, log, abort):
                if reader.done():
                    break
                if kind == "audio":
                    await ws.send_bytes(chunks[number])
                else:
                    await ws.send_bytes(bytes([FRAME]) + _SEQUENCE.pack(number) + frames[number % len(frames)])
            await asyncio.sleep(0.5)  # the results of the last frames
            reader.cancel()
            if ws.closed and ws.close_code not in (None, 1000):
                log.error = f"the gateway closed the stream: {ws.close_code}"
    except aiohttp.ClientError as error:
        log.error = f"gateway: {error}"
    return log


async def _read(ws: aiohttp.ClientWebSocketResponse, log: live.StreamLog) -> None:
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        data = json.loads(message.data)
        if data["type"] != "result":
            continue
        result = data["result"]
        log.results.append(live.Received(
            at=time.perf_counter(),
            frame_sequence=int(result.get("frame_sequence", 0)),
            audio_status=_status(result, "audio"),
            video_status=_status(result, "video"),
        ))


def _status(result: dict, modality: str) -> int:
    name = result.get("result", {}).get(modality, {}).get("status", "MODALITY_STATUS_UNSPECIFIED")
    return pb.ModalityStatus.Value(name)


def added_latency(fusion_target: str, web_url: str, media: Media) -> dict:
    """Median stream latency straight and through the gateway, one stream at a time, 15 fps, results at 30 Hz."""
    plan = live.StreamPlan(fps=15.0, seconds=LATENCY_SECONDS, result_rate_hz=LATENCY_RESULT_RATE_HZ)
    warm_up = live.StreamPlan(fps=15.0, seconds=WARM_UP_SECONDS, result_rate_hz=LATENCY_RESULT_RATE_HZ)
    asyncio.run(live.run_stream(fusion_target, media, warm_up, live.StreamLog(start=time.perf_counter() + 0.1)))
    asyncio.run(run_ws_stream(web_url, media, warm_up, live.StreamLog(start=time.perf_counter() + 0.1)))
    direct: list[float] = []
    gateway: list[float] = []
    for _ in range(LATENCY_ROUNDS):
        log = asyncio.run(live.run_stream(fusion_target, media, plan, live.StreamLog(start=time.perf_counter() + 0.1)))
        if log.error:
            raise RuntimeError(f"the direct stream failed: {log.error}")
        direct += log.latencies_ms()
        log = asyncio.run(run_ws_stream(web_url, media, plan, live.StreamLog(start=time.perf_counter() + 0.1)))
        if log.error:
            raise RuntimeError(f"the gateway stream failed: {log.error}")
        gateway += log.latencies_ms()
    direct_summary, gateway_summary = summarise(direct), summarise(gateway)
    return {
        "direct_latency_ms": direct_summary.as_dict(),
        "gateway_latency_ms": gateway_summary.as_dict(),
        "added_p50_ms": round(gateway_summary.median - direct_summary.median, 2),
    }


def concurrent_streams(web_url: str, media: Media, gateway_pid: int, streams: int = CONCURRENT_STREAMS,
                       seconds: float = HOLD_SECONDS) -> dict:
    """`streams` browser-like streams at once for `seconds` (bench.live's rule for holding) and the gateway's CPU."""
    plan = live.StreamPlan(fps=15.0, seconds=seconds, result_rate_hz=5.0)
    begin = time.perf_counter() + 0.2
    stagger = 1.0 / plan.expected_rate_hz / streams
    logs = [live.StreamLog(start=begin + i * stagger) for i in range(streams)]
    cpu_before, wall_before = cpu_seconds(gateway_pid), time.monotonic()

    async def run_all() -> None:
        await asyncio.gather(*(run_ws_stream(web_url, media, plan, log) for log in logs))

    asyncio.run(run_all())
    wall = time.monotonic() - wall_before
    gateway_cpu = cpu_seconds(gateway_pid) - cpu_before
    verdict = live.judge(logs, plan)
    return {
        "streams": streams,
        "held": verdict.held,
        "streams_held": streams if verdict.held else 0,
        "reasons": list(verdict.reasons),
        "min_results_per_s": verdict.min_results_per_s,
        "gateway_cores_used": round(gateway_cpu / wall, 3),
        "gateway_cpu_ms_per_stream_s": round(1000.0 * gateway_cpu / (streams * wall), 2),
        "gateway_cpu_ms_per_result": round(1000.0 * gateway_cpu / max(1, sum(len(log.results) for log in logs)), 3),
    }


def start_gateway(stack: LocalStack) -> str:
    """Start the stack's gateway on a free port; its WebSocket URL once it answers."""
    stack.web_port = free_port()
    stack.start_web()
    health = f"http://127.0.0.1:{stack.web_port}/healthz"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(health, timeout=1).read()
            return f"ws://127.0.0.1:{stack.web_port}/ws"
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway did not answer on {health} within 30 s")
            time.sleep(0.2)


def measure(stack: LocalStack, media: Media) -> dict:
    web_url = start_gateway(stack)
    figures = added_latency(stack.fusion_target, web_url, media)
    figures["concurrent"] = concurrent_streams(web_url, media, stack.processes["web"].pid)
    return figures


def main() -> int:
    os.environ.update(SERVICE_ENVIRONMENT)
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as logs:
        port = free_port()
        stack = LocalStack(ROOT / "model_repository", audio_port=port, video_port=port, fusion_port=free_port(),
                           log_dir=Path(logs))
        stack.start()
        try:
            stack.wait_serving(timeout_s=180)
            print(json.dumps(measure(stack, Media()), indent=2))
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
