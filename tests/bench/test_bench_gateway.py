"""The gateway benchmark's browser-like stream, against the gateway in front of a stand-in service."""

from __future__ import annotations

import asyncio
import time

from bench import live
from bench.gateway import run_ws_stream
from bench.media import Media
from tests.client.web_stand_in import EchoFusion, Harness


def test_a_browser_like_stream_sends_frames_and_audio_and_times_each_frames_first_result():
    async def scenario() -> tuple[live.StreamLog, EchoFusion]:
        fusion = EchoFusion()
        async with Harness(fusion) as harness:
            plan = live.StreamPlan(fps=10.0, seconds=2.0)
            log = await run_ws_stream(harness.ws_url, Media(), plan, live.StreamLog(start=time.perf_counter() + 0.05))
        return log, fusion

    log, fusion = asyncio.run(scenario())
    assert log.error is None
    assert len(log.frames) == 20
    (requests,) = fusion.streams
    assert sum(r.HasField("audio") for r in requests) == 20  # every 100 ms chunk of 2 s
    forwarded = [r.frame.sequence for r in requests if r.HasField("frame")]
    # A frame that waits for the call (opening, or busy) gives way to a newer one; the newest always goes.
    assert forwarded == sorted(set(forwarded)) and forwarded[-1] == 20
    latencies = log.latencies_ms()
    assert len(latencies) == len(forwarded) and all(latency > 0 for latency in latencies)
