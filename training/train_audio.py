"""Train the voice emotion model and export it to model_repository/audio/<version>/.

    python -m training.train_audio --data ../shared/datasets --out model_repository

Speaker-independent from start to end: RAVDESS actors in VALIDATION_SPEAKERS (two men, two women) are held out
of training entirely; every choice (grid search, epochs) is made on them, and the report describes them.
Steps: windows (cached under training/runs/) -> recorded grid search (short runs) -> final training with the
best configuration -> export -> report with both label views, per-speaker groups and added noise.
About 1 hour on the project's shared 2-core machine (training/reports/audio/README.md has the breakdown).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fusion_service.features.audio import N_FEATURES, N_FRAMES
from fusion_service.features.audio_input import pool_window_probabilities
from protos.emotion.v1.constants import LABELS
from training.audio_dataset import AugmentConfig, WindowSet, build_windows
from training.audio_eval import write_validation_report
from training.export import export_savedmodel
from training.reporting import evaluate_predictions
from training.speech_corpora import SpeechRecord, find_records

# ---- configuration ------------------------------------------------------------------------------------------
VALIDATION_SPEAKERS = ("ravdess:17", "ravdess:18", "ravdess:19", "ravdess:20")  # odd = male, even = female
AUGMENTED_COPIES = 3  # degraded versions of each training clip, besides the clean one
AUGMENT = AugmentConfig()
SEED = 7

GRID = {  # searched with short runs on the validation speakers
    "conv_filters": [0, 128],  # 0: statistics of the feature frames only; else also of a Conv1D layer's output
    "tess_weight": [1.0, 0.3],  # TESS has 2 speakers but 70% of the clips: how much its windows count
}
DEFAULTS = {"conv_filters": 0, "tess_weight": 1.0, "hidden": 256, "dropout": 0.5, "learning_rate": 1e-3}
GRID_AUGMENTED_COPIES = 1  # the search trains on the clean clips and one augmented copy, to stay short
GRID_EPOCHS = 8
FINAL_EPOCHS = 30
PATIENCE = 8  # epochs without a better validation UAR before the final run stops
BATCH_SIZE = 128

NOISE_SNRS_DB = (20, 10, 0)
NOISE_KINDS = ("pink", "babble")

RUNS_DIR = Path(__file__).resolve().parent / "runs"
REPORT_DIR = Path(__file__).resolve().parent / "reports" / "audio"
MODEL_NAME = "audio"
EXPORT_VERSION = 1
# --------------------------------------------------------------------------------------------------------------

def split_records(records: list[SpeechRecord]) -> tuple[list[SpeechRecord], list[SpeechRecord]]:
    missing = set(VALIDATION_SPEAKERS) - {r.speaker for r in records}
    if missing:
        raise SystemExit(f"validation speakers {sorted(missing)} not found in the data; is --data right?")
    train = [r for r in records if r.speaker not in VALIDATION_SPEAKERS]
    validation = [r for r in records if r.speaker in VALIDATION_SPEAKERS]
    return train, validation


def sample_weights(windows: WindowSet, tess_weight: float) -> np.ndarray:
    """Per-window weights: TESS windows count tess_weight, then every class gets the same total weight."""
    weights = np.where(np.char.startswith(windows.speakers, "tess:"), tess_weight, 1.0)
    class_totals = np.bincount(windows.labels, weights=weights, minlength=len(LABELS))
    class_factor = np.divide(weights.sum() / len(LABELS), class_totals, out=np.zeros(len(LABELS)),
                             where=class_totals > 0)
    return (weights * class_factor[windows.labels]).astype(np.float32)


def build_model(mean: np.ndarray, variance: np.ndarray, conv_filters: int, hidden: int, dropout: float,
                learning_rate: float) -> keras.Model:
    """Statistics of the frame sequence (and of a Conv1D layer over it) -> a small dense classifier.

    The input normalisation statistics are part of the model. Summarising the 2 s of frames by per-feature
    statistics generalised to new speakers better than a deeper Conv1D stack in our search (see the report).
    """
    inputs = keras.Input((N_FRAMES, N_FEATURES), name="features")
    frames = keras.layers.Normalization(axis=-1, mean=mean, variance=variance)(inputs)
    summary = FrameStatistics()(frames)
    if conv_filters:
        local = keras.layers.Conv1D(conv_filters, 3, padding="same", use_bias=False)(frames)
        local = keras.layers.ReLU()(keras.layers.BatchNormalization()(local))
        summary = keras.layers.Concatenate()([summary, FrameStatistics()(local)])
    x = keras.layers.BatchNormalization()(summary)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


class FrameStatistics(keras.layers.Layer):
    """Per feature, over the window's frames: mean, standard deviation, 10th and 90th percentile."""

    def call(self, x):
        mean = keras.ops.mean(x, axis=1)
        std = keras.ops.sqrt(keras.ops.var(x, axis=1) + 1e-5)
        low, high = keras.ops.unstack(keras.ops.quantile(x, [0.1, 0.9], axis=1), num=2, axis=0)
        return keras.ops.reshape(keras.ops.concatenate([mean, std, low, high], axis=-1), (-1, 4 * x.shape[-1]))


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frames = features.reshape(-1, N_FEATURES).astype(np.float64)
    return frames.mean(axis=0), np.maximum(frames.var(axis=0), 1e-6)


def clip_probabilities(model, windows: WindowSet, n_clips: int) -> list[np.ndarray | None]:
    """Per clip, the pooled window probabilities as the service pools them (None: no speech window)."""
    probabilities = model.predict(windows.features, batch_size=256, verbose=0)
    pooled: list[np.ndarray | None] = [None] * n_clips
    for clip in np.unique(windows.clips):
        pooled[clip] = pool_window_probabilities(probabilities[windows.clips == clip])
    return pooled


class ClipValidation(keras.callbacks.Callback):
    """Clip-level validation UAR after each epoch (what the evaluation CLI measures); keeps the best weights."""

    def __init__(self, windows: WindowSet, records: list[SpeechRecord], patience: int | None):
        super().__init__()
        self.windows, self.records, self.patience = windows, records, patience
        self.best_uar, self.best_epoch, self.best_weights, self.history = -1.0, -1, None, []

    def on_epoch_end(self, epoch, logs=None):
        report = evaluate_predictions([r.label for r in self.records],
                                      clip_probabilities(self.model, self.windows, len(self.records)))
        self.history.append({"epoch": epoch + 1, "loss": float(logs["loss"]),
                             "train_window_accuracy": float(logs["accuracy"]), "val_uar": report["uar"],
                             "val_accuracy": report["accuracy"], "val_seed4_accuracy": report["seed4"]["accuracy"]})
        print(f"  epoch {epoch + 1}: loss {logs['loss']:.3f}  validation clips: UAR {report['uar']:.3f}  "
              f"accuracy {report['accuracy']:.3f}  four-class accuracy {report['seed4']['accuracy']:.3f}", flush=True)
        if report["uar"] > self.best_uar:
            self.best_uar, self.best_epoch = report["uar"], epoch + 1
            self.best_weights = self.model.get_weights()
        elif self.patience is not None and epoch + 1 - self.best_epoch >= self.patience:
            self.model.stop_training = True


def train(config: dict, train_windows: WindowSet, validation_windows: WindowSet,
          validation_records: list[SpeechRecord], epochs: int, patience: int | None
          ) -> tuple[keras.Model, ClipValidation]:
    keras.utils.set_random_seed(SEED)
    mean, variance = feature_statistics(train_windows.features[train_windows.copies == 0])
    model_config = {name: value for name, value in config.items() if name != "tess_weight"}
    model = build_model(mean, variance, **model_config)
    validation = ClipValidation(validation_windows, validation_records, patience)
    weights = sample_weights(train_windows, config["tess_weight"])
    order = np.random.default_rng(SEED).permutation(len(train_windows.labels))
    model.fit(train_windows.features[order], train_windows.labels[order], sample_weight=weights[order],
              batch_size=BATCH_SIZE, epochs=epochs, callbacks=[validation], verbose=0)
    model.set_weights(validation.best_weights)
    return model, validation


def grid_search(train_windows: WindowSet, validation_windows: WindowSet,
                validation_records: list[SpeechRecord]) -> tuple[dict, list[dict]]:
    train_windows = train_windows.select(train_windows.copies <= GRID_AUGMENTED_COPIES)
    results = []
    names = list(GRID)
    for values in itertools.product(*(GRID[name] for name in names)):
        config = {**DEFAULTS, **dict(zip(names, values))}
        print(f"grid: {dict(zip(names, values))}", flush=True)
        started = time.monotonic()
        _, validation = train(config, train_windows, validation_windows, validation_records, GRID_EPOCHS, None)
        results.append({"config": config, "best_val_uar": validation.best_uar, "best_epoch": validation.best_epoch,
                        "seconds": round(time.monotonic() - started), "history": validation.history})
        print(f"grid: best validation UAR {validation.best_uar:.3f} at epoch {validation.best_epoch}", flush=True)
    best = max(results, key=lambda result: result["best_val_uar"])
    return best["config"], results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_audio", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"),
                        help="datasets folder (its speech/ subfolder is read if present)")
    parser.add_argument("--out", type=Path, default=Path("model_repository"), help="model repository")
    parser.add_argument("--skip-search", action="store_true", help="train DEFAULTS without the grid search")
    parser.add_argument("--epochs", type=int, default=FINAL_EPOCHS, help="most epochs of the final training")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: measure the exported model again with today's audio path (for example "
                             "after a change to the speech filter), keeping the recorded training details")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    started = time.monotonic()

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    speech_dir = args.data / "speech" if (args.data / "speech").is_dir() else args.data
    train_records, validation_records = split_records(find_records(speech_dir))
    if args.report_only:
        version_dir = args.out / MODEL_NAME / str(EXPORT_VERSION)
        recorded = json.loads((REPORT_DIR / "report.json").read_text())["extra"]
        kept = {name: value for name, value in recorded.items() if name not in ("model", "speech_detector", "speaker_groups", "noise")}
        write_validation_report(version_dir, validation_records, REPORT_DIR, NOISE_SNRS_DB, NOISE_KINDS, SEED,
                                extra=kept)
        print(f"report in {REPORT_DIR}; {(time.monotonic() - started) / 60:.1f} min", flush=True)
        return 0
    print(f"{len(train_records)} training clips, {len(validation_records)} validation clips "
          f"({', '.join(VALIDATION_SPEAKERS)})", flush=True)
    train_windows = build_windows(train_records, AUGMENTED_COPIES, AUGMENT, SEED, RUNS_DIR)
    validation_windows = build_windows(validation_records, 0, AUGMENT, SEED, RUNS_DIR)
    print(f"{len(train_windows.labels)} training windows, {len(validation_windows.labels)} validation windows, "
          f"{time.monotonic() - started:.0f} s", flush=True)

    if args.skip_search:
        config, search = dict(DEFAULTS), []
    else:
        config, search = grid_search(train_windows, validation_windows, validation_records)
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        (REPORT_DIR / "grid_search.json").write_text(json.dumps(search, indent=2) + "\n")
    print(f"final training with {config}", flush=True)
    model, validation = train(config, train_windows, validation_windows, validation_records, args.epochs, PATIENCE)
    print(f"best validation UAR {validation.best_uar:.3f} at epoch {validation.best_epoch}", flush=True)

    version_dir = export_savedmodel(model, args.out, MODEL_NAME, "features", (N_FRAMES, N_FEATURES), LABELS,
                                    validation_windows.features[:4], version=EXPORT_VERSION)
    print(f"exported {version_dir}", flush=True)
    minutes = (time.monotonic() - started) / 60
    write_validation_report(
        version_dir, validation_records, REPORT_DIR, NOISE_SNRS_DB, NOISE_KINDS, SEED,
        extra={"grid_search": {", ".join(f"{name}={r['config'][name]}" for name in GRID):
                               {"best_val_uar": r["best_val_uar"], "best_epoch": r["best_epoch"],
                                "seconds": r["seconds"]} for r in search},
               "config": config, "validation_speakers": list(VALIDATION_SPEAKERS),
               "selection_note": "configuration and epoch were chosen on these validation speakers, so these "
                                 "figures are slightly optimistic; unseen corpora measure the model without it",
               "training_clips": len(train_records), "training_windows": int(len(train_windows.labels)),
               "augmented_copies": AUGMENTED_COPIES, "best_epoch": validation.best_epoch,
               "training_history": validation.history, "training_minutes": round(minutes, 1)},
    )
    print(f"report in {REPORT_DIR}; total {(time.monotonic() - started) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
