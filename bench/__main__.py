"""`python -m bench` (`make bench`): run the benchmark suite, print the table, write bench/results.json."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
from pathlib import Path

# Set before numpy loads: small matrix products on 2 cores lose more to a BLAS thread pool than they gain.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from bench import report, suite  # noqa: E402  (after the environment above)
from bench.live import add_audio_chunk_argument, check_audio_chunk  # noqa: E402
from bench.live import EDGE_SECONDS, WARMUP_SECONDS  # noqa: E402
from scripts.local_stack import ROOT  # noqa: E402

MINIMUM_HOLD_S = WARMUP_SECONDS + 2 * EDGE_SECONDS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark the emotion fusion system on this machine: starts model servers and the fusion "
        "service on free loopback ports, runs bounded workloads, stops everything, prints a table and writes JSON.",
    )
    parser.add_argument("--repository", type=Path, default=ROOT / "model_repository",
                        help="model repository with audio/<version>/ and video/<version>/ (default: model_repository)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="where to write the results")
    parser.add_argument("--hold-seconds", type=float, default=60.0,
                        help="how long a number of concurrent streams must hold (default 60)")
    defaults = suite.Settings(repository=Path(), log_dir=Path())
    parser.add_argument("--max-streams", type=int, default=defaults.max_streams,
                        help=f"most concurrent streams tried (default {defaults.max_streams})")
    parser.add_argument("--stream-step", type=int, default=defaults.stream_step,
                        help=f"streams added per level of the search (default {defaults.stream_step})")
    add_audio_chunk_argument(parser)
    parser.add_argument("--quick", action="store_true",
                        help=f"a short trial of the harness (fewer runs, {MINIMUM_HOLD_S:g}-s holds): figures are not comparable")
    args = parser.parse_args(argv)
    if args.hold_seconds < MINIMUM_HOLD_S:
        parser.error(f"--hold-seconds must be at least {MINIMUM_HOLD_S:g} (the warm-up and the two lag windows)")
    if args.max_streams < 1 or args.stream_step < 1:
        parser.error("--max-streams and --stream-step must be at least 1")
    check_audio_chunk(parser, args)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
        settings = suite.Settings(
            repository=args.repository.resolve(),
            log_dir=Path(logs),
            hold_seconds=args.hold_seconds,
            max_streams=args.max_streams,
            stream_step=args.stream_step,
            audio_chunk_seconds=args.audio_chunk_seconds,
        )
        if args.quick:
            settings = dataclasses.replace(
                settings, compute_runs=50, baseline_runs=10, rpc_runs=30, cold_starts=1, latency_seconds=10.0,
                hold_seconds=MINIMUM_HOLD_S,
            )
        try:
            results = suite.run(settings)
        except Exception:
            print(f"\nbenchmark failed; the processes' logs: {logs}", file=sys.stderr)
            for log in sorted(Path(logs).rglob("*.log")):
                print(f"--- {log.relative_to(logs)} (last lines)\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]),
                      file=sys.stderr)
            raise
    results["command"] = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    report.write_json(results, args.out)
    print("\n" + report.table(results) + f"\n\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
