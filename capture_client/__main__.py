"""`emotion-capture`: the live view from a webcam and microphone, `--list-devices`, and `analyze FILE`."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from capture_client.connection import ServiceUnreachable, add_connection_arguments, connection_from_args
from protos.emotion.v1.constants import AUDIO_WINDOW_SECONDS, MAX_RESULT_RATE_HZ

LIVE_DESCRIPTION = """\
Live emotion recognition from a webcam and a microphone through the emotion fusion service.
Shows the camera with a box per face, bars of the voice, face and fused probabilities and the fused
emotion; in the terminal when there is no display (or with --no-window). Nothing is stored.
Esc, q or Ctrl-C quits. Analyse a recording instead with: emotion-capture analyze FILE --out DIR"""

ANALYZE_DESCRIPTION = """\
Analyse a recording faster than real time: a video file (with its audio track, or --audio FILE) or an
audio file. Each window (the 2 s of audio ending at time t and the frame shown at t, every --hop seconds)
gets a result, smoothed over time as a live stream's are (--smoothing-s); writes timeline.csv, timeline.json
and timeline.png (or only those named in --outputs)."""


def _positive(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def _time_constant(value: str) -> float:
    from protos.emotion.v1.smoothing import MAX_TIME_CONSTANT_S

    number = float(value)
    if not 0 <= number <= MAX_TIME_CONSTANT_S:
        raise argparse.ArgumentTypeError(f"must be between 0 (no smoothing) and {MAX_TIME_CONSTANT_S:g}, got {value}")
    return number


def live_parser() -> argparse.ArgumentParser:
    from capture_client.modes import MODES

    parser = argparse.ArgumentParser(prog="emotion-capture", description=LIVE_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list-devices", action="store_true", help="list cameras and microphones, then exit")
    parser.add_argument("--mode", choices=MODES, default="both", help="what to capture and analyse (default: %(default)s)")
    capture = parser.add_argument_group("capture")
    capture.add_argument("--camera", default="0", help="camera index, video file or stream URL (default: %(default)s)")
    capture.add_argument("--width", type=int, help="requested camera width in pixels")
    capture.add_argument("--height", type=int, help="requested camera height in pixels")
    capture.add_argument("--fps", type=_positive, help="requested camera frame rate")
    capture.add_argument("--microphone",
                         help="microphone index or (part of its) name, or a sound file played as the microphone (default: the system's)")
    view = parser.add_argument_group("view")
    view.add_argument("--no-window", action="store_true", help="show the view in the terminal")
    view.add_argument("--result-rate", type=_positive, help=f"results per second to ask for, up to {MAX_RESULT_RATE_HZ:g} (default: the service's, 5)")
    view.add_argument("--duration", type=_positive, help="stop after this many seconds")
    add_connection_arguments(parser)
    return parser


def analyze_parser() -> argparse.ArgumentParser:
    from capture_client.modes import MODES
    from capture_client.timeline import OUTPUTS
    from protos.emotion.v1.smoothing import DEFAULT_TIME_CONSTANT_S

    parser = argparse.ArgumentParser(prog="emotion-capture analyze", description=ANALYZE_DESCRIPTION)
    parser.add_argument("file", type=Path, help="video or audio file (anything ffmpeg reads)")
    parser.add_argument("--audio", type=Path, help="take the audio from this file instead of FILE's audio track")
    parser.add_argument("--out", type=Path, required=True, help="directory for the outputs (created if missing)")
    parser.add_argument("--outputs", nargs="+", choices=OUTPUTS, default=list(OUTPUTS), help="what to write (default: all)")
    parser.add_argument("--mode", choices=MODES, default="both", help="modalities to analyse (default: %(default)s)")
    parser.add_argument("--hop", type=_positive, default=0.5, help="seconds between windows (default: %(default)s)")
    parser.add_argument("--smoothing-s", type=_time_constant, default=DEFAULT_TIME_CONSTANT_S,
                        help="time constant of the smoothing over time, the live stream's default; the instant answers "
                        "are kept in instant_* columns (0: none; default: %(default)s)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_connection_arguments(parser)
    return parser


def list_devices() -> int:
    from capture_client.capture import CaptureError, list_cameras, list_microphones

    print("cameras (--camera INDEX):")
    print("\n".join(f"  {line}" for line in list_cameras()) or "  none found")
    print("microphones (--microphone INDEX or NAME):")
    try:
        print("\n".join(f"  {line}" for line in list_microphones()) or "  none found")
    except CaptureError as error:
        print(f"  {error}")
    return 0


def live(argv: list[str]) -> int:
    parser = live_parser()
    args = parser.parse_args(argv)
    if args.list_devices:
        return list_devices()
    if args.result_rate is not None and args.result_rate > MAX_RESULT_RATE_HZ:
        parser.error(f"--result-rate: the service gives at most {MAX_RESULT_RATE_HZ:g} results per second")
    connection = connection_from_args(parser, args)

    from capture_client.capture import CaptureError, parse_source
    from capture_client.live import run_live
    from capture_client.media import MediaError
    from capture_client.session import LiveSession
    from capture_client.window import display_available

    use_window = not args.no_window and display_available()
    in_place_terminal = not use_window and sys.stdout.isatty()
    # In the terminal view, connection events are shown in the view itself.
    logging.basicConfig(level=logging.ERROR if in_place_terminal else logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        session = LiveSession(
            connection, args.mode,
            camera_source=parse_source(args.camera),
            microphone_device=parse_source(args.microphone) if args.microphone else None,
            camera_size=(args.width, args.height), camera_fps=args.fps,
            result_rate_hz=args.result_rate or 0.0,
        )
    except (CaptureError, MediaError) as error:
        print(f"emotion-capture: {error}", file=sys.stderr)
        return 2
    return run_live(session, use_window, args.duration)


def analyze(argv: list[str]) -> int:
    parser = analyze_parser()
    args = parser.parse_args(argv)
    connection = connection_from_args(parser, args)

    from capture_client.analyze import AnalysisError, Recording
    from capture_client.analyze import analyze as analyze_recording
    from capture_client.timeline import smooth, summary, write_outputs
    from capture_client.media import MediaError

    try:
        recording = Recording.open(args.file, args.audio, args.mode)
        started = time.monotonic()
        instant = analyze_recording(recording, connection, args.hop, args.mode, progress=not args.no_progress)
        windows = smooth(instant, args.smoothing_s)
        took = time.monotonic() - started
    except (MediaError, ServiceUnreachable, AnalysisError) as error:
        print(f"emotion-capture analyze: {error}", file=sys.stderr)
        return 1
    source = {
        "file": str(args.file), "audio_file": str(args.audio) if args.audio else None, "mode": args.mode,
        "duration_s": round(recording.duration_s, 3), "hop_s": args.hop, "audio_window_s": AUDIO_WINDOW_SECONDS,
        "smoothing_time_constant_s": args.smoothing_s,
    }
    written = write_outputs(windows, args.out, tuple(args.outputs), source)
    print(summary(windows, took, recording.duration_s))
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["analyze"]:
        return analyze(argv[1:])
    return live(argv)


if __name__ == "__main__":
    sys.exit(main())
