"""The issue's targets, the printed table and bench/results.json."""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from pathlib import Path

from bench.prometheus import STAGES


@dataclass(frozen=True)
class Target:
    """A figure (a path into results["figures"]) compared with a bound."""

    path: tuple[str, ...]
    comparison: str  # "<=" or ">="
    bound: float

    @property
    def name(self) -> str:
        return ".".join(self.path)

    def value(self, figures: dict) -> float | None:
        value = figures
        for key in self.path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value

    def met(self, figures: dict) -> bool | None:
        value = self.value(figures)
        if value is None:
            return None
        return {"<=": operator.le, ">=": operator.ge}[self.comparison](value, self.bound)


# Issue 7, "Targets on our 2-core machine", with the four that issue 18 tightened.
TARGETS = (
    Target(("fuse_p50_ms",), "<=", 12),  # issue 18 (issue 7: 15)
    Target(("fuse_p99_ms",), "<=", 40),
    Target(("stream_latency_p50_ms",), "<=", 50),
    Target(("streams_sustained",), ">=", 32),  # issue 18 (issue 7: 8)
    Target(("cold_start_s", "median"), "<=", 6),  # issue 18 (issue 7: 15)
    Target(("features_speedup",), ">=", 10),
    Target(("rss_mb", "fusion"), "<=", 300),
    Target(("rss_mb", "model-server"), "<=", 450),  # issue 18: both models in one process
    # Issue 19: the web gateway.
    Target(("gateway", "added_p50_ms"), "<=", 5),
    Target(("gateway", "concurrent", "streams_held"), ">=", 8),
)


def target_report(figures: dict) -> list[dict]:
    return [
        {"figure": t.name, "target": f"{t.comparison} {t.bound:g}", "value": t.value(figures), "met": t.met(figures)}
        for t in TARGETS
    ]


def _number(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    return str(value) if isinstance(value, int) else f"{value:.{digits}f}"


def _target_cell(figures: dict, name: str | None) -> str:
    """"<= 15  met" for the target of that name, "" for a figure without one."""
    target = next((t for t in TARGETS if t.name == name), None)
    if target is None:
        return ""
    met = target.met(figures)
    return f"{target.comparison} {target.bound:g}  {'?' if met is None else ('met' if met else 'MISSED')}"


def table(results: dict) -> str:
    """Human-readable summary: headline figures with their targets, stage times, the streams search."""
    figures = results["figures"]
    git, host = results["git"], results["machine"]
    lines = [
        f"commit {git['commit'][:12]}{' (uncommitted changes)' if git['dirty'] else ''}   "
        f"{host['cores']} cores, {host['cpu_model']}   load average {results['load_average_start']} -> "
        f"{results['load_average_end']}   took {results['duration_s']:.0f} s",
        "",
        f"{'figure':<28}{'median':>10}{'p99':>10}{'runs':>7}   target",
    ]

    def row(name: str, median, p99=None, runs=None, target: str | None = None) -> None:
        lines.append(
            f"{name:<28}{_number(median, 2):>10}{_number(p99, 2):>10}{_number(runs):>7}   "
            f"{_target_cell(figures, target)}"
        )

    for name in ("features_ms", "features_baseline_ms", "speech_ms", "stream_audio_ms", "decode_ms", "face_ms", "face_720p_ms"):
        summary = figures[name]
        row(name, summary["median"], summary["p99"], summary["runs"])
    row("features_speedup (x)", figures["features_speedup"], target="features_speedup")
    for model, summary in figures.get("predict_ms", {}).items():
        row(f"predict_ms {model}", summary["median"], summary["p99"], summary["runs"])
    if "fuse_p50_ms" in figures:
        row("fuse_ms", figures["fuse_p50_ms"], figures["fuse_p99_ms"], figures["fuse_runs"], target="fuse_p50_ms")
        lines[-1] += f"; p99 {_target_cell(figures, 'fuse_p99_ms')}"
    if "stream_latency_p50_ms" in figures:
        row("stream_latency_ms", figures["stream_latency_p50_ms"], figures["stream_latency_p99_ms"],
            results["details"]["stream_latency"]["frames_included"], target="stream_latency_p50_ms")
    if "streams_sustained" in figures:
        row("streams_sustained", figures["streams_sustained"], target="streams_sustained")
        if figures["streams_sustained"] >= results["details"]["streams"]["most_tried"]:
            lines[-1] += "  (the most tried: raise --max-streams)"
    gateway = figures.get("gateway")
    if gateway:
        row("gateway_added_latency_ms", gateway["added_p50_ms"], target="gateway.added_p50_ms")
        lines[-1] += (f" (stream latency p50 {gateway['gateway_latency_ms']['median']:.1f} ms through the gateway, "
                      f"{gateway['direct_latency_ms']['median']:.1f} ms direct)")
        concurrent = gateway["concurrent"]
        row("gateway_streams_held", concurrent["streams_held"], target="gateway.concurrent.streams_held")
        lines[-1] += (f" (of {concurrent['streams']}; gateway CPU {concurrent['gateway_cpu_ms_per_stream_s']:.1f} ms "
                      f"per stream-second{'' if concurrent['held'] else '; fails: ' + '; '.join(concurrent['reasons'])})")
    cold = figures["cold_start_s"]
    row("cold_start_s", cold["median"], cold["p99"], cold["runs"], target="cold_start_s.median")
    for process, megabytes in figures.get("rss_mb", {}).items():
        row(f"rss_mb {process}", megabytes, target=f"rss_mb.{process}")

    starts = results["details"].get("cold_starts", [])
    if starts:
        lines += ["", "cold starts (s from start): " + "; ".join(
            f"audio model ready {_number(start['audio_model_ready_s'])}, video model ready "
            f"{_number(start['video_model_ready_s'])}, SERVING {_number(start['serving_s'])}" for start in starts
        )]
    fuse_cpu = results["details"].get("fuse_cpu_ms_per_call")
    if fuse_cpu:
        lines += ["", "CPU time per Fuse call (ms): " + ", ".join(f"{name} {ms:.2f}" for name, ms in fuse_cpu.items())]

    for workload, report in results["details"].get("service_metrics", {}).items():
        lines += ["", *_stage_lines(f"service stages, {workload}", report)]

    streams = results["details"].get("streams")
    if streams:
        lines += ["", "streams search: " + streams["definition"]]
        for level in streams["levels"]:
            lag = (
                f"lag median {_number(level['lag_first_ms'], 0)} -> {_number(level['lag_last_ms'], 0)} ms, "
                f"p99 {_number(level['lag_p99_ms'], 0)} ms"
            )
            cores = ", ".join(f"{name} {used:.2f}" for name, used in level["cpu_cores_used"].items())
            per_result = ", ".join(f"{name} {ms:.2f}" for name, ms in level["cpu_ms_per_result"].items()) or "-"
            verdict = "holds" if level["held"] else "fails: " + "; ".join(level["reasons"])
            lines.append(f"  {level['streams']:>3} streams: {verdict}; {lag}; "
                         f"results {level['min_results_per_s']}/s (slowest); cores used: {cores}; "
                         f"CPU per result (ms): {per_result}")
    return "\n".join(lines)


def _stage_lines(title: str, report: dict) -> list[str]:
    lines = [f"{title} (from the service's histograms; p50/p99 interpolated in buckets)",
             f"  {'stage':<16}{'count':>8}{'mean ms':>10}{'p50 ms':>10}{'p99 ms':>10}"]
    for stage in STAGES:
        figures = report["stages"].get(stage)
        if figures:
            lines.append(f"  {stage:<16}{figures['count']:>8}{figures['mean_ms']:>10.2f}"
                         f"{figures['p50_ms']:>10.2f}{figures['p99_ms']:>10.2f}")
    extras = [f"results {report['modality_results']}"] if report["modality_results"] else []
    if report["rpc_errors"]:
        extras.append(f"errors {report['rpc_errors']}")
    if report["dropped_frames"]:
        extras.append(f"dropped frames {report['dropped_frames']}")
    if report["repeated_frames"]:
        extras.append(f"repeated frames (reused) {report['repeated_frames']}")
    return lines + ([f"  {'; '.join(extras)}"] if extras else [])


def write_json(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**results, "targets": target_report(results["figures"])}, indent=2) + "\n")
