"""The whole benchmark: in-process compute first (quiet machine), then a stack on free loopback ports for
the cold starts, the round trips, the live streams and the search for sustained streams; then stop it."""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import calls, compute, gateway, live
from bench.cold_start import start_stack
from bench.machine import cpu_seconds, git_commit, load_average, machine, rss_mb
from bench.media import CHUNK_SECONDS, Media
from bench.prometheus import scrape, workload_report
from bench.stats import summarise
from scripts.local_stack import LocalStack

MODEL_SERVERS = {"audio": "audio-model-server", "video": "video-model-server"}
WARMUP_CALLS = 10  # not counted: first calls pay for connections, lazy initialisation and cold caches


@dataclass(frozen=True)
class Settings:
    repository: Path
    log_dir: Path
    compute_runs: int = 300
    baseline_runs: int = 100
    rpc_runs: int = 200
    cold_starts: int = 3
    latency_seconds: float = 30.0
    hold_seconds: float = 60.0
    max_streams: int = 36  # past issue 18's 32, to show what margin there is
    stream_step: int = 4
    audio_chunk_seconds: float = CHUNK_SECONDS  # of the live streams' audio messages


def check_repository(repository: Path) -> None:
    for name in MODEL_SERVERS:
        versions = [p for p in (repository / name).glob("*") if p.name.isdigit() and (p / "saved_model.pb").is_file()]
        if not versions:
            raise SystemExit(
                f"{repository / name} holds no model version (<version>/saved_model.pb): train it "
                f"(make train-{name}) or pass --repository with a directory that has audio/ and video/ models"
            )


def run(settings: Settings) -> dict:
    check_repository(settings.repository)
    began = time.monotonic()
    results: dict = {
        "started_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "git": git_commit(),
        "load_average_start": load_average(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
    }
    media = Media()
    figures: dict = {}
    details: dict = {}

    _progress("compute: features (ours and librosa), speech detection, JPEG decoding, face detection")
    pieces = compute.run(media, settings.compute_runs, settings.baseline_runs)
    figures.update({name: summary.as_dict() for name, summary in pieces.items()})
    figures["features_speedup"] = round(pieces["features_baseline_ms"].median / pieces["features_ms"].median, 1)

    _progress(f"cold start x{settings.cold_starts}")
    starts = []
    stack = None
    for attempt in range(settings.cold_starts):
        if stack is not None:
            stack.stop()
        stack, timings = start_stack(settings.repository, settings.log_dir / f"start-{attempt + 1}")
        starts.append(timings)
        _progress(f"  SERVING after {timings['serving_s']:.1f} s")
    figures["cold_start_s"] = summarise([s["serving_s"] for s in starts]).as_dict()
    details["cold_starts"] = starts

    try:
        _measure_running_stack(stack, media, settings, figures, details)
    finally:
        stack.stop()

    results["figures"] = figures
    results["details"] = details
    results["load_average_end"] = load_average()
    results["duration_s"] = round(time.monotonic() - began, 1)
    return results


def _measure_running_stack(stack: LocalStack, media: Media, settings: Settings, figures: dict, details: dict) -> None:
    port = stack.metrics_port
    services = details.setdefault("service_metrics", {})

    _progress("Predict round trips to each model server")
    predictions = calls.predict({name: stack.model_target(name) for name in MODEL_SERVERS}, media, settings.rpc_runs)
    figures["predict_ms"] = {name: summary.as_dict() for name, summary in predictions.items()}

    _progress("Fuse calls")
    with calls.FuseClient(stack.fusion_target, media) as client:
        client.check()
        for _ in range(WARMUP_CALLS):
            client.call()
        before, cpu_before = scrape(port), _cpu_times(stack)
        fuse = client.times(settings.rpc_runs)
        services["fuse"] = workload_report(scrape(port).minus(before))
    # CPU time per call is steadier than wall time on a busy machine: it tracks the work, not the waiting.
    details["fuse_cpu_ms_per_call"] = {
        name: round(1000.0 * seconds / fuse.runs, 2) for name, seconds in _cpu_used(stack, cpu_before).items()
    }
    figures["fuse_p50_ms"], figures["fuse_p99_ms"], figures["fuse_runs"] = fuse.median, fuse.p99, fuse.runs

    _progress(f"one live stream, 30 fps, {settings.latency_seconds:g} s")
    before = scrape(port)
    latency, stream_details = live.stream_latency(
        stack.fusion_target, media,
        live.StreamPlan(fps=30.0, seconds=settings.latency_seconds, audio_chunk_seconds=settings.audio_chunk_seconds),
    )
    services["stream_latency"] = workload_report(scrape(port).minus(before))
    figures["stream_latency_p50_ms"], figures["stream_latency_p99_ms"] = latency.median, latency.p99
    details["stream_latency"] = stream_details

    _progress(f"the web gateway: one stream direct and through it ({gateway.LATENCY_ROUNDS} x 2 x "
              f"{gateway.LATENCY_SECONDS:g} s), then {gateway.CONCURRENT_STREAMS} browser-like streams at once")
    figures["gateway"] = gateway.measure(stack, media)
    stack.stop("web")  # the streams search measures the service alone

    sustained, levels, rss_at_best = _search_sustained(stack, media, settings)
    figures["streams_sustained"] = sustained
    figures["rss_mb"] = rss_at_best
    details["streams"] = {"definition": live.DEFINITION, "levels": levels, "most_tried": settings.max_streams}


def _search_sustained(stack: LocalStack, media: Media, settings: Settings) -> tuple[int, list[dict], dict]:
    """Upward through the levels until one does not hold; 1 stream is tried only if the first level fails.
    Returns the most streams held, every level's verdict, and the memory readings at the level reported."""
    plan = sustained_plan(settings.hold_seconds, settings.audio_chunk_seconds)
    levels = live.stream_levels(settings.max_streams, settings.stream_step)
    held, reports = 0, []
    for streams in levels:
        reports.append(_announced_level(stack, media, plan, streams, settings.hold_seconds))
        if not reports[-1]["held"]:
            break
        held = streams
    if held == 0 and levels[0] > 1:
        reports.append(_announced_level(stack, media, plan, 1, settings.hold_seconds))
        held = 1 if reports[-1]["held"] else 0
    reported = next((r for r in reports if r["streams"] == held), reports[-1])
    return held, reports, reported["rss_mb_peak"]


def sustained_plan(hold_seconds: float, audio_chunk_seconds: float = CHUNK_SECONDS) -> live.StreamPlan:
    """What each stream of the sustained-streams search sends and asks for."""
    return live.StreamPlan(fps=15.0, seconds=hold_seconds, result_rate_hz=5.0, audio_chunk_seconds=audio_chunk_seconds)


def _announced_level(stack: LocalStack, media: Media, plan: live.StreamPlan, streams: int, hold_seconds: float) -> dict:
    _progress(f"{streams} concurrent stream(s), 15 fps, results at 5 Hz, {hold_seconds:g} s")
    report = measure_level(stack, media, plan, streams)
    _progress("  holds" if report["held"] else "  does not hold: " + "; ".join(report["reasons"]))
    return report


def measure_level(stack: LocalStack, media: Media, plan: live.StreamPlan, streams: int) -> dict:
    """`streams` concurrent streams on the running stack: the verdict, memory, CPU and the service's metrics."""
    pids = {name: process.pid for name, process in stack.processes.items()}
    peak_rss: dict[str, float] = {}

    def sample() -> None:
        for name, pid in pids.items():
            value = rss_mb(pid)
            if value is not None:
                peak_rss[name] = max(peak_rss.get(name, 0.0), value)

    _wait_until_idle(stack.metrics_port)
    before, cpu_before = scrape(stack.metrics_port), _cpu_times(stack)
    client_before, wall_before = time.process_time(), time.monotonic()
    logs, aborted = asyncio.run(live.run_level(stack.fusion_target, media, plan, streams, sample))
    wall = time.monotonic() - wall_before
    cpu_used = _cpu_used(stack, cpu_before)
    cores_used = {name: round(seconds / wall, 2) for name, seconds in cpu_used.items()}
    cores_used["bench client"] = round((time.process_time() - client_before) / wall, 2)
    results = sum(len(log.results) for log in logs)
    verdict = live.judge(logs, plan, aborted)
    report = asdict(verdict)
    report["reasons"] = list(verdict.reasons)
    report["lag_growth_ms"] = verdict.lag_growth_ms
    report["rss_mb_peak"] = {name: round(value, 1) for name, value in peak_rss.items()}
    report["cpu_cores_used"] = cores_used
    report["cpu_ms_per_result"] = {name: round(1000.0 * seconds / results, 2) for name, seconds in cpu_used.items()} if results else {}
    report["service_metrics"] = workload_report(scrape(stack.metrics_port).minus(before))
    return report


def _cpu_times(stack: LocalStack) -> dict[str, float | None]:
    return {name: cpu_seconds(process.pid) for name, process in stack.processes.items()}


def _cpu_used(stack: LocalStack, before: dict[str, float | None]) -> dict[str, float]:
    """CPU seconds each process of the stack used since `before`."""
    after = _cpu_times(stack)
    return {name: after[name] - before[name] for name in after if after[name] is not None and before.get(name) is not None}


def _wait_until_idle(metrics_port: int, timeout_s: float = 15.0) -> None:
    """Streams of the previous level must be closed before the next one starts."""
    deadline = time.monotonic() + timeout_s
    while scrape(metrics_port).value("fusion_active_streams") > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)


def _progress(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

