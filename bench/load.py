"""`python -m bench.load` (`make load`): a bounded load test over loopback.

Starts both model servers and the fusion service on free loopback ports, then for --seconds runs
--streams live streams (frames at --fps and 100 ms audio chunks, as a capture client sends them) and
--unary clients calling Fuse back to back, all at once; then stops everything and reports calls made,
errors, latency (p50/p99) and the fusion service's memory before and after. Exits 1 when any call
failed or answered MODEL_UNAVAILABLE, or when the service's memory grew beyond --max-rss-growth-mib.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

# Set before numpy loads: small matrix products on 2 cores lose more to a BLAS thread pool than they gain.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import grpc  # noqa: E402

from bench.calls import fuse_request  # noqa: E402
from bench.live import StreamLog, StreamPlan, run_stream  # noqa: E402
from bench.media import Media  # noqa: E402
from bench.stats import summarise  # noqa: E402
from protos.emotion.v1 import emotion_pb2 as pb  # noqa: E402
from protos.emotion.v1 import emotion_pb2_grpc  # noqa: E402
from scripts.local_stack import ROOT, LocalStack, free_port  # noqa: E402

UNARY_TIMEOUT_S = 30.0
RSS_SAMPLE_S = 5.0
SETTLE_S = 2.0  # after the load, before the last memory reading: calls being torn down release their buffers


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=180.0, help="how long the load runs (default 180)")
    parser.add_argument("--streams", type=int, default=6, help="concurrent live streams (default 6)")
    parser.add_argument("--unary", type=int, default=3, help="concurrent clients calling Fuse back to back (default 3)")
    parser.add_argument("--fps", type=float, default=15.0, help="frames per second each stream sends (default 15)")
    parser.add_argument("--max-rss-growth-mib", type=float, default=32.0,
                        help="largest growth of the service's memory accepted as noise (default 32)")
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository", help="model repository")
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.streams < 0 or args.unary < 0 or args.streams + args.unary == 0 or args.fps <= 0:
        parser.error("--seconds and --fps must be > 0; --streams and --unary >= 0, not both 0")
    return args


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}: has it exited?")


@dataclass
class UnaryLog:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unavailable: int = 0


async def unary_client(target: str, request: pb.FuseRequest, until: float, log: UnaryLog) -> None:
    async with grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
        fuse = emotion_pb2_grpc.EmotionFusionStub(channel).Fuse
        while time.perf_counter() < until:
            start = time.perf_counter()
            try:
                response = await fuse(request, timeout=UNARY_TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                log.errors.append(f"{error.code().name}: {error.details()}")
                continue
            log.latencies_ms.append((time.perf_counter() - start) * 1000)
            if pb.MODEL_UNAVAILABLE in (response.audio.status, response.video.status):
                log.unavailable += 1


async def sample_rss(pid: int, samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(rss_mib(pid))
        try:
            await asyncio.wait_for(stop.wait(), RSS_SAMPLE_S)
        except asyncio.TimeoutError:
            pass


async def load(target: str, pid: int, media: Media, args: argparse.Namespace) -> tuple[list[StreamLog], UnaryLog, list[float]]:
    start = time.perf_counter() + 0.5
    plan = StreamPlan(fps=args.fps, seconds=args.seconds)
    stream_logs = [StreamLog(start=start) for _ in range(args.streams)]
    unary = UnaryLog()
    rss: list[float] = []
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_rss(pid, rss, stop))
    await asyncio.gather(
        *(run_stream(target, media, plan, log) for log in stream_logs),
        *(unary_client(target, fuse_request(media), start + args.seconds, unary) for _ in range(args.unary)),
    )
    stop.set()
    await sampler
    return stream_logs, unary, rss


def report(stream_logs: list[StreamLog], unary: UnaryLog, rss: dict[str, float], args: argparse.Namespace) -> dict:
    stream_latencies = [latency for log in stream_logs for latency in log.latencies_ms()]
    frames_sent = sum(len(log.frames) for log in stream_logs)
    frames_included = sum(len(log.first_results()) for log in stream_logs)
    failed_streams = [log.error for log in stream_logs if log.error]
    unavailable = unary.unavailable + sum(log.unavailable_results() for log in stream_logs)
    return {
        "seconds": args.seconds,
        "streams": args.streams,
        "unary_clients": args.unary,
        "fps": args.fps,
        "calls": {
            "fuse": len(unary.latencies_ms) + len(unary.errors),
            "streams": args.streams,
            "stream_results": sum(len(log.results) for log in stream_logs),
            "frames_sent": frames_sent,
            "frames_analysed": frames_included,
            "frames_dropped": frames_sent - frames_included,
        },
        "errors": {
            "failed_fuse_calls": len(unary.errors),
            "failed_streams": len(failed_streams),
            "model_unavailable_answers": unavailable,
            "examples": (unary.errors + failed_streams)[:5],
        },
        "latency_ms": {
            "fuse": summarise(unary.latencies_ms).as_dict() if unary.latencies_ms else None,
            "stream_frame_to_result": summarise(stream_latencies).as_dict() if stream_latencies else None,
        },
        "fusion_rss_mib": rss,
    }


def print_report(result: dict) -> None:
    calls, errors, latency, rss = result["calls"], result["errors"], result["latency_ms"], result["fusion_rss_mib"]
    print(f"\nload: {result['streams']} streams at {result['fps']:g} fps + {result['unary_clients']} Fuse clients "
          f"for {result['seconds']:g} s over loopback")
    print(f"  calls: {calls['fuse']} Fuse, {calls['streams']} streams with {calls['stream_results']} results; "
          f"frames {calls['frames_sent']} sent, {calls['frames_analysed']} analysed, "
          f"{calls['frames_dropped']} dropped (back-pressure: newest frame only)")
    print(f"  errors: {errors['failed_fuse_calls']} failed Fuse calls, {errors['failed_streams']} failed streams, "
          f"{errors['model_unavailable_answers']} MODEL_UNAVAILABLE answers")
    for example in errors["examples"]:
        print(f"    e.g. {example}")
    for name, summary in latency.items():
        if summary:
            print(f"  latency {name}: p50 {summary['median']:.0f} ms, p99 {summary['p99']:.0f} ms ({summary['runs']} samples)")
    print(f"  fusion service RSS: {rss['start']:.1f} MiB at start, {rss['end']:.1f} MiB at end, "
          f"{rss['max']:.1f} MiB at most (growth {rss['end'] - rss['start']:+.1f} MiB)")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    media = Media()
    request = fuse_request(media)
    with tempfile.TemporaryDirectory(prefix="load-") as logs:
        model_port = free_port()  # one model server for both models, as `make run` starts them
        stack = LocalStack(
            args.repository, audio_port=model_port, video_port=model_port, fusion_port=free_port(),
            log_dir=Path(logs),
            # Every client here shares one address: lift the per-client stream limit for the test.
            fusion_args=("--max-streams-per-client=0",),
        )
        with stack:
            stack.wait_serving(timeout_s=300)
            pid = stack.processes["fusion"].pid
            with grpc.insecure_channel(stack.fusion_target) as channel:
                fuse = emotion_pb2_grpc.EmotionFusionStub(channel).Fuse
                for _ in range(5):  # warm-up: lazy initialisation is not growth
                    warm = fuse(request, timeout=UNARY_TIMEOUT_S)
                if warm.audio.status != pb.USED or warm.video.status != pb.USED:
                    raise SystemExit(f"the load request must use both modalities, got {warm.audio.reason} / {warm.video.reason}")
            rss_start = rss_mib(pid)
            print(f"load: {args.streams} streams + {args.unary} Fuse clients for {args.seconds:g} s ...", flush=True)
            stream_logs, unary, samples = asyncio.run(load(stack.fusion_target, pid, media, args))
            time.sleep(SETTLE_S)
            rss_end = rss_mib(pid)
    rss = {"start": rss_start, "end": rss_end, "max": max([rss_start, rss_end, *samples])}
    result = report(stream_logs, unary, rss, args)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    errors = result["errors"]
    failed = errors["failed_fuse_calls"] + errors["failed_streams"] + errors["model_unavailable_answers"]
    grown = rss_end - rss_start > args.max_rss_growth_mib
    if failed or grown:
        print(f"FAILED: {failed} errors" + (f"; memory grew beyond {args.max_rss_growth_mib:g} MiB" if grown else ""))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
