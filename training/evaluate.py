"""Evaluate an exported model on any data folder the loaders read, through the live service's code path.

    python -m training.evaluate audio DATA_DIR [--json] [--model MODEL_DIR]
    python -m training.evaluate video DATA_DIR [--json] [--model MODEL_DIR]
    python -m training.evaluate fusion AUDIO_DIR FACE_DIR [--json]

MODEL_DIR defaults to the newest version in model_repository/<modality>/. Files where no speech (audio) or
no face (video) is found count as errors. `fusion` pairs each clip with same-label faces (seeded) and reports
audio, video and every fusion method on the same pairs (training.fusion_eval).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.model_versions import DEFAULT_REPOSITORY, newest_version
from training.reporting import evaluate_predictions, format_text

Predictions = tuple[list[str], list[np.ndarray | None]]


def _predictor(modality: str) -> Callable[[Path, Path], Predictions]:
    if modality == "audio":
        from training.audio_eval import audio_predictions

        return audio_predictions
    from training.video_eval import video_predictions

    return video_predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("modality", choices=("audio", "video", "fusion"))
    parser.add_argument("data_dirs", type=Path, nargs="+", metavar="DATA_DIR",
                        help="folder in any layout the corpus loaders read (fusion: AUDIO_DIR FACE_DIR)")
    parser.add_argument("--model", type=Path, help="exported model version directory (default: newest)")
    parser.add_argument("--seed", type=int, help="fusion: seed of the pairing")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)

    expected = 2 if args.modality == "fusion" else 1
    if len(args.data_dirs) != expected:
        parser.error(f"{args.modality} takes {'AUDIO_DIR FACE_DIR' if expected == 2 else 'one DATA_DIR'}, "
                     f"got {len(args.data_dirs)} folders")
    for folder in args.data_dirs:
        if not folder.is_dir():
            parser.error(f"data folder {folder} does not exist")
    if args.modality == "fusion":
        if args.model:
            parser.error("fusion uses the newest version of both models; --model is for audio or video")
        return _evaluate_fusion(*args.data_dirs, args.seed, args.json)
    args.data_dir = args.data_dirs[0]
    model_dir = args.model or newest_version(DEFAULT_REPOSITORY, args.modality)
    true_labels, probabilities = _predictor(args.modality)(args.data_dir, model_dir)
    if not true_labels:
        raise SystemExit(f"no labelled {args.modality} files found in {args.data_dir}")
    report = evaluate_predictions(true_labels, probabilities)
    if args.json:
        print(json.dumps(report))
    else:
        print(f"model {model_dir}\ndata {args.data_dir}\n")
        print(format_text(report))
    return 0


def _evaluate_fusion(audio_dir: Path, face_dir: Path, seed: int | None, as_json: bool) -> int:
    from training.fusion_eval import SEED, evaluate_folders, format_pairs_text

    result = evaluate_folders(audio_dir, face_dir, DEFAULT_REPOSITORY, SEED if seed is None else seed)
    print(json.dumps(result) if as_json else format_pairs_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
