"""Evaluate an exported model on any data folder the loaders read, through the live service's code path.

    python -m training.evaluate audio DATA_DIR [--json] [--model MODEL_DIR]
    python -m training.evaluate video DATA_DIR [--json] [--model MODEL_DIR]

MODEL_DIR defaults to the newest version in model_repository/<modality>/. Files where no speech (audio) or
no face (video) is found count as errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from training.reporting import evaluate_predictions, format_text

DEFAULT_REPOSITORY = Path(__file__).resolve().parent.parent / "model_repository"

Predictions = tuple[list[str], list[np.ndarray | None]]


def newest_version(repository: Path, modality: str) -> Path:
    """The highest numbered version directory, as a model server would serve it."""
    model_dir = repository / modality
    versions = sorted((int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()), reverse=True)
    if not versions:
        raise SystemExit(
            f"no exported {modality} model in {model_dir}; train one (python -m training.train_{modality}) "
            "or pass --model"
        )
    return model_dir / str(versions[0])


def _predictor(modality: str) -> Callable[[Path, Path], Predictions]:
    if modality == "audio":
        from training.audio_eval import audio_predictions

        return audio_predictions
    from training.video_eval import video_predictions

    return video_predictions


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("modality", choices=("audio", "video"))
    parser.add_argument("data_dir", type=Path, help="folder in any layout the corpus loaders read")
    parser.add_argument("--model", type=Path, help="exported model version directory (default: newest)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)

    if not args.data_dir.is_dir():
        parser.error(f"data folder {args.data_dir} does not exist")
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


if __name__ == "__main__":
    sys.exit(main())
