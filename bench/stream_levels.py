"""Chosen numbers of concurrent live streams on a fresh local stack, each measured and judged as the sustained-streams
search of `make bench` measures its levels (bench/live.py), with the CPU every process used per result: a change's
before and after in a few minutes, without the whole benchmark.

    .venv/bin/python -m bench.stream_levels --streams 8 12 16 --hold-seconds 40
    .venv/bin/python -m bench.stream_levels --streams 16 --audio-chunk-seconds 0.02    # the chunks of make bench before session 8
    cd /tmp/old-checkout && /work/main/.venv/bin/python -m bench.stream_levels   # another tree (with this module)

On a shared machine, alternate the trees run by run and compare medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

# Set before numpy loads, as in `python -m bench`.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bench import live, suite  # noqa: E402
from bench.cold_start import start_stack  # noqa: E402
from bench.machine import load_average  # noqa: E402
from bench.media import Media  # noqa: E402
from scripts.local_stack import ROOT  # noqa: E402

WARMUP_STREAMS = 2
WARMUP_SECONDS = 3.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.stream_levels", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository")
    parser.add_argument("--streams", type=int, nargs="+", default=[8], help="levels to measure, in order (default 8)")
    parser.add_argument("--hold-seconds", type=float, default=40.0,
                        help=f"each level's length (default 40; at least {live.WARMUP_SECONDS + 2 * live.EDGE_SECONDS:g} "
                        "for a verdict)")
    live.add_audio_chunk_argument(parser)
    parser.add_argument("--out", type=Path, help="also write the levels here as JSON")
    args = parser.parse_args(argv)
    live.check_audio_chunk(parser, args)
    if args.hold_seconds < live.WARMUP_SECONDS + 2 * live.EDGE_SECONDS:
        parser.error(f"--hold-seconds must be at least {live.WARMUP_SECONDS + 2 * live.EDGE_SECONDS:g} "
                     "(the warm-up and the two lag windows)")
    if min(args.streams) < 1:
        parser.error("--streams must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite.check_repository(args.repository)
    media = Media()
    with tempfile.TemporaryDirectory(prefix="bench-levels-") as logs:
        stack, _ = start_stack(args.repository.resolve(), Path(logs))
        try:
            # Uncounted: the first streams pay for connections and the networks' first runs.
            warmup = live.StreamPlan(fps=15.0, seconds=WARMUP_SECONDS, result_rate_hz=5.0)
            asyncio.run(live.run_level(stack.fusion_target, media, warmup, WARMUP_STREAMS, lambda: None))
            levels = []
            for streams in args.streams:
                plan = suite.sustained_plan(args.hold_seconds, args.audio_chunk_seconds)
                report = suite.measure_level(stack, media, plan, streams)
                report["load_average"] = load_average()
                levels.append(report)
                print(json.dumps({key: report[key] for key in (
                    "streams", "held", "reasons", "min_results_per_s", "cpu_ms_per_result", "cpu_cores_used",
                    "load_average")}), flush=True)
        finally:
            stack.stop()
    if args.out:
        args.out.write_text(json.dumps(levels, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
