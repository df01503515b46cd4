"""Live streams as a capture client sends them: frames at a steady rate, audio in 100 ms chunks, results read
as they come. Measures the latency of one stream and searches for the most streams the machine holds.

Definitions (printed with the results):
- A result *includes* frame s when its frame_sequence is s; the service analyses only the newest frame,
  so the frames it skipped are included in no result.
- stream latency of frame s = receipt of the first result including s - the moment s was handed to gRPC.
- lag of frame s (sustained streams) = the same receipt - the moment s was due by the camera clock
  (frame 1 at the stream's start, then one every 1/fps s). Unlike latency it also grows when sending
  falls behind (flow control).
- A number of concurrent streams *holds* for a hold period when, after a warm-up:
  no call fails and no result reports MODEL_UNAVAILABLE; every stream receives at least
  MIN_RATE_FRACTION of the results it asked for; and the lag does not grow: the median lag of the frames
  due in the last EDGE_SECONDS exceeds that of the first EDGE_SECONDS by at most MAX_LAG_GROWTH_MS.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import grpc
import numpy as np

from bench.media import CHUNK_SECONDS, Media
from bench.stats import Summary, summarise
from fusion_service.config import Settings
from protos.emotion.v1 import emotion_pb2 as pb
from protos.emotion.v1 import emotion_pb2_grpc
from protos.emotion.v1.constants import AUDIO_SAMPLE_RATE_HZ, MAX_AUDIO_CHUNK_SECONDS

WARMUP_SECONDS = 5.0
EDGE_SECONDS = 15.0
MAX_LAG_GROWTH_MS = 50.0
MIN_RATE_FRACTION = 0.9
ABORT_LAG_MS = 5000.0  # a level whose lag passes this cannot hold: stop it early
END_TIMEOUT_S = 10.0

DEFINITION = (
    f"holds = for the whole hold, after {WARMUP_SECONDS:g} s warm-up: no failed call or MODEL_UNAVAILABLE result; "
    f"each stream gets >= {MIN_RATE_FRACTION:.0%} of its results; lag (result receipt - frame due time) "
    f"not growing: median over frames due in the last {EDGE_SECONDS:g} s <= median over the first "
    f"{EDGE_SECONDS:g} s + {MAX_LAG_GROWTH_MS:g} ms"
)


def add_audio_chunk_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--audio-chunk-seconds", type=float, default=CHUNK_SECONDS,
                        help=f"length of the streams' audio messages (default {CHUNK_SECONDS:g}, as the capture client and "
                        "the browser page send them; make bench before session 8 used 0.02)")


def check_audio_chunk(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not 0 < args.audio_chunk_seconds <= MAX_AUDIO_CHUNK_SECONDS:
        parser.error(f"--audio-chunk-seconds must be above 0 and at most {MAX_AUDIO_CHUNK_SECONDS:g} (the service's limit)")


@dataclass(frozen=True)
class StreamPlan:
    fps: float
    seconds: float
    result_rate_hz: float = 0.0  # 0: the service's default
    audio_chunk_seconds: float = CHUNK_SECONDS

    @property
    def expected_rate_hz(self) -> float:
        return self.result_rate_hz or Settings.stream_result_rate_hz


@dataclass(frozen=True)
class Received:
    at: float  # time.perf_counter() of receipt
    frame_sequence: int
    audio_status: int
    video_status: int


@dataclass
class StreamLog:
    """What one stream sent and received; times are time.perf_counter() seconds."""

    start: float
    frames: dict[int, tuple[float, float]] = field(default_factory=dict)  # sequence -> (due, handed to gRPC)
    results: list[Received] = field(default_factory=list)
    error: str | None = None

    def first_results(self) -> list[tuple[Received, float, float]]:
        """(result, frame due, frame sent) for the first result including each frame."""
        seen: set[int] = set()
        found = []
        for result in self.results:
            if result.frame_sequence and result.frame_sequence not in seen and result.frame_sequence in self.frames:
                seen.add(result.frame_sequence)
                due, sent = self.frames[result.frame_sequence]
                found.append((result, due, sent))
        return found

    def latencies_ms(self) -> list[float]:
        return [(result.at - sent) * 1000.0 for result, _, sent in self.first_results()]

    def lags(self) -> list[tuple[float, float]]:
        """(seconds from the stream's start to the frame's due time, lag in ms) per included frame."""
        return [(due - self.start, (result.at - due) * 1000.0) for result, due, _ in self.first_results()]

    def unavailable_results(self) -> int:
        unavailable = pb.MODEL_UNAVAILABLE
        return sum(1 for r in self.results if unavailable in (r.audio_status, r.video_status))


async def run_stream(
    target: str, media: Media, plan: StreamPlan, log: StreamLog, abort: asyncio.Event | None = None
) -> StreamLog:
    """One stream from log.start (perf_counter time) for plan.seconds, on its own connection; fills log."""
    # A local subchannel pool gives every stream its own TCP connection, as separate clients would have.
    async with grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        call = emotion_pb2_grpc.EmotionFusionStub(channel).StreamFuse()
        reader = asyncio.create_task(_read(call, log))
        try:
            await call.write(pb.StreamRequest(config=pb.StreamConfig(
                audio_encoding=pb.PCM_S16LE, audio_sample_rate_hz=AUDIO_SAMPLE_RATE_HZ, result_rate_hz=plan.result_rate_hz,
            )))
            await _send(call, media, plan, log, abort)
            await call.done_writing()
            await asyncio.wait_for(reader, END_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            log.error = f"{error.code().name}: {error.details()}"
        except asyncio.InvalidStateError:  # a write after the service ended the call: its status says why
            log.error = f"{(await call.code()).name}: {await call.details()}"
        except asyncio.TimeoutError:
            log.error = f"the service did not end the stream within {END_TIMEOUT_S:g} s of the last message"
        finally:
            reader.cancel()
    return log


async def paced_input(media: Media, plan: StreamPlan, log: StreamLog,
                      abort: asyncio.Event | None = None) -> AsyncIterator[tuple[str, int]]:
    """("audio", chunk index) and ("frame", sequence) at the moments a microphone and a camera deliver them,
    from log.start for plan.seconds; each frame is entered in log.frames (due, handed over) as it is yielded."""
    end = log.start + plan.seconds
    next_frame = next_chunk = log.start
    sequence = chunk_index = 0
    while min(next_frame, next_chunk) < end and not (abort and abort.is_set()):
        delay = min(next_frame, next_chunk) - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if next_chunk <= next_frame:
            yield "audio", chunk_index % len(media.speech_chunks_pcm16(plan.audio_chunk_seconds))
            chunk_index += 1
            next_chunk = log.start + chunk_index * plan.audio_chunk_seconds
        else:
            sequence += 1
            log.frames[sequence] = (next_frame, time.perf_counter())
            yield "frame", sequence
            next_frame = log.start + sequence / plan.fps


async def _send(call, media: Media, plan: StreamPlan, log: StreamLog, abort: asyncio.Event | None) -> None:
    images = [pb.Image(encoded=frame) for frame in media.camera_frames_jpeg]
    chunks = [pb.StreamRequest(audio=pb.AudioChunk(data=chunk)) for chunk in media.speech_chunks_pcm16(plan.audio_chunk_seconds)]
    async for kind, number in paced_input(media, plan, log, abort):
        if kind == "audio":
            await call.write(chunks[number])
        else:
            image = images[number % len(images)]
            await call.write(pb.StreamRequest(frame=pb.Frame(image=image, sequence=number)))


async def _read(call, log: StreamLog) -> None:
    async for response in call:
        log.results.append(Received(
            at=time.perf_counter(),
            frame_sequence=response.frame_sequence,
            audio_status=response.result.audio.status,
            video_status=response.result.video.status,
        ))


def stream_latency(target: str, media: Media, plan: StreamPlan) -> tuple[Summary, dict]:
    """Latency of one live stream (ms) and what else it saw."""

    async def one() -> StreamLog:
        return await run_stream(target, media, plan, StreamLog(start=time.perf_counter() + 0.1))

    log = asyncio.run(one())
    if log.error:
        raise RuntimeError(f"the latency stream failed: {log.error}")
    latencies = log.latencies_ms()
    if not latencies:
        raise RuntimeError("the latency stream got no result including a frame")
    details = {
        "frames_sent": len(log.frames),
        "results": len(log.results),
        "frames_included": len(latencies),
        "results_per_s": round(len(log.results) / plan.seconds, 2),
        "unavailable_results": log.unavailable_results(),
    }
    return summarise(latencies), details


# ---------------------------------------------------------------- sustained streams


@dataclass(frozen=True)
class Verdict:
    streams: int
    held: bool
    reasons: tuple[str, ...]
    lag_first_ms: float | None
    lag_last_ms: float | None
    lag_p99_ms: float | None
    min_results_per_s: float
    failed_calls: int
    unavailable_results: int

    @property
    def lag_growth_ms(self) -> float | None:
        if self.lag_first_ms is None or self.lag_last_ms is None:
            return None
        return self.lag_last_ms - self.lag_first_ms


def judge(logs: list[StreamLog], plan: StreamPlan, aborted: bool = False) -> Verdict:
    """Did these streams hold for plan.seconds? See the module docstring for the rule."""
    reasons = []
    failed = sum(1 for log in logs if log.error)
    unavailable = sum(log.unavailable_results() for log in logs)
    if aborted:
        reasons.append(f"stopped early: lag above {ABORT_LAG_MS:g} ms or a failed call")
    if failed:
        first_error = next(log.error for log in logs if log.error)
        reasons.append(f"{failed} call(s) failed ({first_error})")
    if unavailable:
        reasons.append(f"{unavailable} result(s) with MODEL_UNAVAILABLE")

    judged_seconds = plan.seconds - WARMUP_SECONDS
    rates = [
        sum(1 for r in log.results if log.start + WARMUP_SECONDS <= r.at <= log.start + plan.seconds) / judged_seconds
        for log in logs
    ]
    min_rate = min(rates) if rates else 0.0
    if min_rate < MIN_RATE_FRACTION * plan.expected_rate_hz:
        reasons.append(f"results at {min_rate:.2f}/s on the slowest stream, wanted {plan.expected_rate_hz:g}/s")

    lags = [(at, lag) for log in logs for at, lag in log.lags() if at >= WARMUP_SECONDS]
    first = [lag for at, lag in lags if at < WARMUP_SECONDS + EDGE_SECONDS]
    last = [lag for at, lag in lags if at >= plan.seconds - EDGE_SECONDS]
    lag_first = float(np.median(first)) if first else None
    lag_last = float(np.median(last)) if last else None
    if lag_first is None or lag_last is None:
        reasons.append("no result included a frame in the first or last part of the hold")
    elif lag_last - lag_first > MAX_LAG_GROWTH_MS:
        reasons.append(f"lag grew by {lag_last - lag_first:.0f} ms (median {lag_first:.0f} -> {lag_last:.0f} ms)")

    return Verdict(
        streams=len(logs),
        held=not reasons,
        reasons=tuple(reasons),
        lag_first_ms=lag_first,
        lag_last_ms=lag_last,
        lag_p99_ms=float(np.percentile([lag for _, lag in lags], 99)) if lags else None,
        min_results_per_s=round(min_rate, 2),
        failed_calls=failed,
        unavailable_results=unavailable,
    )


def stream_levels(max_streams: int, step: int) -> list[int]:
    """Concurrent streams to try, upward: step, 2*step, ... max_streams."""
    return list(range(step, max_streams + 1, step))


def clearly_failing(logs: list[StreamLog], now: float) -> bool:
    """A call failed, or after the warm-up a stream waited ABORT_LAG_MS for a result or for a frame."""
    for log in logs:
        if log.error:
            return True
        if now - log.start < WARMUP_SECONDS:
            continue
        last_result = log.results[-1].at if log.results else log.start
        lags = log.lags()
        if (now - last_result) * 1000.0 > ABORT_LAG_MS or (lags and lags[-1][1] > ABORT_LAG_MS):
            return True
    return False


async def run_level(
    target: str, media: Media, plan: StreamPlan, streams: int, sample: Callable[[], None]
) -> tuple[list[StreamLog], bool]:
    """`streams` concurrent streams with staggered starts; `sample` is called once a second meanwhile
    (memory and CPU readings). Returns the logs and whether the level was stopped early."""
    abort = asyncio.Event()
    stagger = 1.0 / plan.expected_rate_hz / streams
    begin = time.perf_counter() + 0.2
    logs = [StreamLog(start=begin + i * stagger) for i in range(streams)]

    async def watchdog() -> None:
        while not abort.is_set():
            await asyncio.sleep(1.0)
            sample()
            if clearly_failing(logs, time.perf_counter()):
                abort.set()

    watcher = asyncio.create_task(watchdog())
    try:
        await asyncio.gather(*(run_stream(target, media, plan, log, abort) for log in logs))
    finally:
        watcher.cancel()
    return logs, abort.is_set()
