"""Train the voice emotion model and export it to model_repository/audio/<version>/.

    python -m training.train_audio --data ../shared/datasets --out model_repository            # train, export, report
    python -m training.train_audio --data ../shared/datasets --out model_repository --resume   # go on from the checkpoint
    python -m training.train_audio ... --trial NAME --set spec_augment=true --copies 0 --epochs 4   # a recorded attempt
    python -m training.train_audio ... --trial NAME --seeds 7,8 --copies 0 --epochs 3   # a seed ensemble, recorded
    python -m training.train_audio ... --leave-out nemo --epochs 8   # never hears nEMO, then is measured on all of it

Speaker-independent from start to end: the VALIDATION_SPEAKERS of every corpus are held out of training entirely;
epochs and every recorded choice are made on them, by the mean of the per-corpus seven-class UARs (so that no
corpus counts by its size), and the report describes them per corpus. Training is resumable: the model, its
optimiser and the training state are saved to training/checkpoints/audio/ after every epoch. Training uses
THREADS threads (--threads), so that a shared machine keeps a core for everyone else.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
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
from training.audio_model import build_model, input_statistics
from training.model_versions import newest_version
from training.export import export_savedmodel
from training.reporting import evaluate_predictions
from training.speech_corpora import SpeechRecord, find_records

# ---- configuration ------------------------------------------------------------------------------------------
# Held-out speakers of every corpus, never in training (not even as babble): men and women where the corpus
# has both. TESS has only two speakers: both train, and the leave-one-corpus-out run measures TESS instead.
VALIDATION_SPEAKERS: dict[str, tuple[str, ...]] = {
    "ravdess": ("ravdess:17", "ravdess:18", "ravdess:19", "ravdess:20"),  # odd = male, even = female
    "nemo": ("nemo:EB0", "nemo:KD0", "nemo:SM0", "nemo:TP0"),  # two women, two men (data.tsv)
    "turevdb": ("turevdb:1234",),  # a speaker with all four classes
    # 6 of the 29 speaker codes, 70 of the 400 clips; URDU's codes are nearly one class each, so these are
    # chosen to cover the four classes (angry 22, happy 24, neutral 14, sad 10 clips).
    "urdu": ("urdu:SM1", "urdu:SF6", "urdu:SM20", "urdu:SF9", "urdu:SM6", "urdu:SM23"),
}
HELD_OUT = frozenset(speaker for speakers in VALIDATION_SPEAKERS.values() for speaker in speakers)
AUGMENTED_COPIES = 1  # degraded versions of each training clip, besides the clean one
AUGMENT = AugmentConfig(reverb_probability=0.3, band_limit_probability=0.3)
SEED = 7
THREADS = 1  # TensorFlow threads (intra-op; inter-op is 1)

# The recipe; each choice was measured with short runs (--trial) on the validation speakers: see the report.
DEFAULTS = {
    "architecture": "conv1d", "conv_filters": 128, "hidden": 256, "dropout": 0.5, "learning_rate": 1e-3,
    "level_normalise": True, "spec_augment": False,
    "corpus_exponent": 0.5,  # within a class, corpus c weighs (its windows)**exponent: 0 equal, 1 by size
    "mixup_alpha": 0.0,  # > 0: train on mixup blends, mixing weights ~ Beta(alpha, alpha) (MixupBatches)
}
TRAINING_ONLY = ("corpus_exponent", "mixup_alpha")  # configuration of the training batches, not of the model
# Options newer than some checkpoints, with the value that does what was done before they existed: a checkpoint
# that does not name one was trained with that value.
ADDED_LATER = {"mixup_alpha": 0.0}
FINAL_EPOCHS = 30
PATIENCE = 6  # epochs without a better validation score before the final run stops
BATCH_SIZE = 128

NOISE_SNRS_DB = (20, 10, 0)
NOISE_KINDS = ("pink", "babble")

ROOT = Path(__file__).resolve().parent
RUNS_DIR = ROOT / "runs"
REPORT_DIR = ROOT / "reports" / "audio"
CHECKPOINT_DIR = ROOT / "checkpoints" / "audio"
TRIALS_FILE = REPORT_DIR / "trials.json"
LEAVE_OUT_FILE = REPORT_DIR / "leave_one_corpus_out.json"
MODEL_NAME = "audio"
# --------------------------------------------------------------------------------------------------------------


def split_records(records: list[SpeechRecord]) -> tuple[list[SpeechRecord], list[SpeechRecord]]:
    """Training and validation clips: every clip of a held-out speaker is validation, all others train."""
    missing = HELD_OUT - {r.speaker for r in records}
    if missing:
        raise SystemExit(f"validation speakers {sorted(missing)} not found in the data; is --data right? "
                         f"(it must hold {', '.join(sorted(VALIDATION_SPEAKERS))} under speech/)")
    train = [r for r in records if r.speaker not in HELD_OUT]
    validation = [r for r in records if r.speaker in HELD_OUT]
    return train, validation


def window_corpora(windows: WindowSet) -> np.ndarray:
    """The corpus of each window, from its speaker ("<corpus>:<id>")."""
    return np.char.partition(windows.speakers.astype(str), ":")[:, 0]


def sample_weights(windows: WindowSet, corpus_exponent: float) -> np.ndarray:
    """Every class the same total weight; within a class, each corpus's windows together weigh
    (their number)**corpus_exponent, so a big corpus cannot make its level or language stand for a class,
    and a small one is not drowned. Mean weight 1."""
    corpora = window_corpora(windows)
    weights = np.zeros(len(windows.labels), np.float64)
    for label in np.unique(windows.labels):
        in_class = windows.labels == label
        names, counts = np.unique(corpora[in_class], return_counts=True)
        shares = counts.astype(np.float64) ** corpus_exponent
        shares /= shares.sum()
        for name, count, share in zip(names, counts, shares):
            weights[in_class & (corpora == name)] = share / count
    return (weights * len(weights) / weights.sum()).astype(np.float32)


class MixupBatches(keras.utils.PyDataset):
    """Training batches of mixup (Zhang et al., 2018): each window is blended with another window of its batch,
    lam * a + (1 - lam) * b, and so are their one-hot labels and their sample weights, with lam ~ Beta(alpha,
    alpha) drawn per window. Between two voices, corpora or emotions the model is taught a blended answer, not a
    confident one. The blend is of the model's input features; the model normalises its level after that.
    Reshuffled every epoch."""

    def __init__(self, features: np.ndarray, labels: np.ndarray, weights: np.ndarray, batch_size: int,
                 alpha: float, seed: int) -> None:
        super().__init__()
        if alpha <= 0:
            raise ValueError(f"mixup alpha must be > 0 (got {alpha}); use plain batches for no mixup")
        self.features, self.labels, self.weights = features, labels, weights
        self.batch_size, self.alpha = batch_size, alpha
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(len(labels))

    def __len__(self) -> int:
        return math.ceil(len(self.labels) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        batch = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
        partners = self._rng.permutation(len(batch))
        share = self._rng.beta(self.alpha, self.alpha, len(batch)).astype(np.float32)

        def blend(values: np.ndarray) -> np.ndarray:
            weight = share.reshape((-1,) + (1,) * (values.ndim - 1))
            return weight * values + (1.0 - weight) * values[partners]

        one_hot = np.eye(len(LABELS), dtype=np.float32)[self.labels[batch]]
        return blend(self.features[batch]), blend(one_hot), blend(self.weights[batch])

    def on_epoch_end(self) -> None:
        self._order = self._rng.permutation(len(self.labels))


def window_probabilities(model: keras.Model, windows: WindowSet) -> np.ndarray:
    return model.predict(windows.features, batch_size=256, verbose=0)


def clip_probabilities(probabilities: np.ndarray, windows: WindowSet, n_clips: int) -> list[np.ndarray | None]:
    """Per clip, its windows' probabilities pooled as the service pools them (None: no speech window)."""
    pooled: list[np.ndarray | None] = [None] * n_clips
    for clip in np.unique(windows.clips):
        pooled[clip] = pool_window_probabilities(probabilities[windows.clips == clip])
    return pooled


def corpus_views(records: list[SpeechRecord], probabilities: list[np.ndarray | None]) -> dict[str, dict]:
    """Per corpus and pooled: n, seven-class accuracy and UAR, four-class accuracy and UAR; and "score", the
    mean of the per-corpus seven-class UARs, which every choice is made by."""
    views = {}
    for corpus in sorted({r.corpus for r in records}):
        indices = [i for i, r in enumerate(records) if r.corpus == corpus]
        views[corpus] = _summary(evaluate_predictions([records[i].label for i in indices],
                                                      [probabilities[i] for i in indices]))
    views["pooled"] = _summary(evaluate_predictions([r.label for r in records], probabilities))
    views["score"] = float(np.mean([views[c]["uar"] for c in views if c != "pooled"]))
    return views


def _summary(report: dict) -> dict:
    return {"n": report["n"], "accuracy": round(report["accuracy"], 4), "uar": round(report["uar"], 4),
            "four_class_accuracy": round(report["seed4"]["accuracy"], 4),
            "four_class_uar": round(report["seed4"]["uar"], 4)}


def format_views(views: dict) -> str:
    parts = [f"{name} {view['uar']:.3f}/{view['four_class_accuracy']:.3f}" for name, view in views.items()
             if name != "score"]
    return f"score {views['score']:.3f} | UAR/four-class accuracy: " + ", ".join(parts)


class ClipValidation(keras.callbacks.Callback):
    """After each epoch: the clip-level figures of the validation speakers (what the evaluation CLI measures),
    the best weights by score, and early stopping after `patience` epochs without a better score."""

    def __init__(self, windows: WindowSet, records: list[SpeechRecord], patience: int | None,
                 state: dict | None = None) -> None:
        super().__init__()
        self.windows, self.records, self.patience = windows, records, patience
        self.state = state or {"epoch": 0, "best_score": -1.0, "best_epoch": 0, "history": [],
                               "training_seconds": 0}
        self.best_weights = None

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        probabilities = window_probabilities(self.model, self.windows)
        views = corpus_views(self.records, clip_probabilities(probabilities, self.windows, len(self.records)))
        seconds = round(time.monotonic() - self.started)
        self.state["history"].append({"epoch": epoch + 1, "loss": round(float(logs["loss"]), 4),
                                      "train_window_accuracy": round(float(logs["accuracy"]), 4),
                                      "validation": views, "seconds": seconds})
        self.state["epoch"] = epoch + 1
        self.state["training_seconds"] += seconds
        print(f"  epoch {epoch + 1}: loss {logs['loss']:.3f} | {format_views(views)} | {seconds} s", flush=True)
        if views["score"] > self.state["best_score"]:
            self.state["best_score"], self.state["best_epoch"] = views["score"], epoch + 1
            self.best_weights = self.model.get_weights()
        elif self.patience is not None and epoch + 1 - self.state["best_epoch"] >= self.patience:
            self.model.stop_training = True


class EpochCheckpoint(keras.callbacks.Callback):
    """The model with its optimiser (last.keras), the best epoch's model (best.keras) and the training state
    (state.json), each replaced in one rename after every epoch, so a session may end at any moment."""

    def __init__(self, validation: ClipValidation, config: dict) -> None:
        super().__init__()
        self.validation, self.config = validation, config

    def on_epoch_end(self, epoch, logs=None):
        CHECKPOINT_DIR.mkdir(parents=True, exist_ok=True)
        _save_model(self.model, "last.keras")
        if self.validation.state["best_epoch"] == epoch + 1:
            _save_model(self.model, "best.keras")
        partial = CHECKPOINT_DIR / "state.partial.json"
        partial.write_text(json.dumps({"config": self.config, **self.validation.state}, indent=2) + "\n")
        partial.replace(CHECKPOINT_DIR / "state.json")


def _save_model(model: keras.Model, name: str) -> None:
    partial = CHECKPOINT_DIR / f"partial.{name}"
    model.save(partial)
    partial.replace(CHECKPOINT_DIR / name)


def train(config: dict, train_windows: WindowSet, validation_windows: WindowSet,
          validation_records: list[SpeechRecord], epochs: int, patience: int | None,
          checkpoint: bool = False, resume: bool = False, seed: int = SEED) -> tuple[keras.Model, ClipValidation]:
    """Train (or, with resume, go on training) and return the model at its best epoch."""
    keras.utils.set_random_seed(seed)
    state = None
    if resume:
        state = json.loads((CHECKPOINT_DIR / "state.json").read_text())
        if {**ADDED_LATER, **state.pop("config")} != config:
            raise SystemExit(f"the checkpoint in {CHECKPOINT_DIR} was trained with another configuration; "
                             "train again without --resume, or restore the configuration it names")
        model = keras.models.load_model(CHECKPOINT_DIR / "last.keras")
        print(f"resuming after epoch {state['epoch']} (best {state['best_score']:.3f} at epoch "
              f"{state['best_epoch']})", flush=True)
    else:
        mean, variance = input_statistics(train_windows.features[train_windows.copies == 0],
                                          config["level_normalise"])
        model = build_model(mean, variance, seed=seed, soft_labels=config["mixup_alpha"] > 0,
                            **{name: value for name, value in config.items() if name not in TRAINING_ONLY})
    validation = ClipValidation(validation_windows, validation_records, patience, state)
    if resume:
        validation.best_weights = keras.models.load_model(CHECKPOINT_DIR / "best.keras").get_weights()
    callbacks = [validation] + ([EpochCheckpoint(validation, config)] if checkpoint else [])
    weights = sample_weights(train_windows, config["corpus_exponent"])
    schedule = {"epochs": epochs, "initial_epoch": validation.state["epoch"], "callbacks": callbacks, "verbose": 0}
    if validation.state["epoch"] < epochs and config["mixup_alpha"] > 0:
        model.fit(MixupBatches(train_windows.features, train_windows.labels, weights, BATCH_SIZE,
                               config["mixup_alpha"], seed), shuffle=False, **schedule)
    elif validation.state["epoch"] < epochs:
        order = np.random.default_rng(seed).permutation(len(train_windows.labels))
        model.fit(train_windows.features[order], train_windows.labels[order], sample_weight=weights[order],
                  batch_size=BATCH_SIZE, **schedule)
    model.set_weights(validation.best_weights)
    return model, validation


def trial(config: dict, train_windows: WindowSet, validation_windows: WindowSet,
          validation_records: list[SpeechRecord], epochs: int, seeds: list[int]) -> dict:
    """A short attempt, measured at its best epoch. With several seeds it is an ensemble: each member is trained
    and measured alone, and the ensemble's figures are those of the members' window probabilities averaged (what
    one SavedModel holding all members would answer)."""
    members, probabilities = [], []
    for seed in seeds:
        model, validation = train(config, train_windows, validation_windows, validation_records, epochs, None,
                                  seed=seed)
        best = validation.state["history"][validation.state["best_epoch"] - 1]
        members.append({"seed": seed, "best_epoch": best["epoch"], "validation": best["validation"],
                        "training_seconds": validation.state["training_seconds"]})
        probabilities.append(window_probabilities(model, validation_windows))
        print(f"  seed {seed}: best at epoch {best['epoch']}: {format_views(best['validation'])}", flush=True)
    if len(members) == 1:
        return {"config": config, "epochs": epochs, **members[0]}
    average = np.mean(probabilities, axis=0)
    return {"config": config, "epochs": epochs, "seeds": seeds, "members": members,
            "validation": corpus_views(validation_records, clip_probabilities(average, validation_windows,
                                                                              len(validation_records))),
            "training_seconds": sum(member["training_seconds"] for member in members)}


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seeds separated by commas, such as 7,8,9") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: each seed once")
    return seeds


def parse_settings(settings: list[str]) -> dict:
    """NAME=VALUE pairs over DEFAULTS; each VALUE is read as JSON (true, 0.5, "cnn2d") or else as text."""
    config = dict(DEFAULTS)
    for setting in settings:
        name, separator, value = setting.partition("=")
        if not separator or name not in DEFAULTS:
            raise SystemExit(f"--set {setting!r}: expected NAME=VALUE with NAME one of {', '.join(DEFAULTS)}")
        try:
            config[name] = json.loads(value)
        except json.JSONDecodeError:
            config[name] = value
    return config


def record_result(path: Path, name: str, result: dict) -> None:
    """Add (or replace) one named entry in a JSON file of results."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results[name] = result
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def leave_one_corpus_out(corpus: str, config: dict, train_records: list[SpeechRecord],
                         validation_records: list[SpeechRecord], train_windows: WindowSet,
                         validation_windows: WindowSet, epochs: int) -> dict:
    """Train without any clip of `corpus` (epochs chosen on the other corpora's validation speakers), then
    measure on every clip of it: how the model does on a corpus, language and channel it never heard."""
    corpora = {r.corpus for r in train_records}
    if corpus not in corpora:
        raise SystemExit(f"--leave-out {corpus!r}: no such corpus in the data ({', '.join(sorted(corpora))})")
    train_part = train_windows.select(window_corpora(train_windows) != corpus)
    others = window_corpora(validation_windows) != corpus
    other_indices = [i for i, r in enumerate(validation_records) if r.corpus != corpus]
    model, validation = train(config, train_part, _renumbered(validation_windows.select(others), other_indices),
                              [validation_records[i] for i in other_indices], epochs, PATIENCE)

    test_records, test_probabilities = [], []
    for records, windows in ((train_records, train_windows.select(train_windows.copies == 0)),
                             (validation_records, validation_windows)):
        probabilities = clip_probabilities(window_probabilities(model, windows), windows, len(records))
        for record, probability in zip(records, probabilities):
            if record.corpus == corpus:
                test_records.append(record)
                test_probabilities.append(probability)
    views = corpus_views(test_records, test_probabilities)
    return {"test": views[corpus], "config": config, "epochs": epochs, "best_epoch": validation.state["best_epoch"],
            "validation_of_the_others": validation.state["history"][validation.state["best_epoch"] - 1]["validation"],
            "training_windows": int(len(train_part.labels)), "training_seconds": validation.state["training_seconds"]}


def _renumbered(windows: WindowSet, kept_records: list[int]) -> WindowSet:
    """Windows whose clip indices point into the list of kept records instead of the full list."""
    position = {record: new for new, record in enumerate(kept_records)}
    return WindowSet(windows.features, windows.labels, windows.speakers,
                     np.asarray([position[clip] for clip in windows.clips], np.int32), windows.copies)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_audio", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"),
                        help="datasets folder (its speech/ subfolder is read if present)")
    parser.add_argument("--out", type=Path, default=Path("model_repository"), help="model repository")
    parser.add_argument("--epochs", type=int, default=FINAL_EPOCHS, help="most epochs of training")
    parser.add_argument("--resume", action="store_true", help=f"go on from the checkpoint in {CHECKPOINT_DIR}")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help=f"change one configuration value ({', '.join(DEFAULTS)})")
    parser.add_argument("--copies", type=int, default=AUGMENTED_COPIES,
                        help="train on the clean clips and this many of their augmented copies")
    parser.add_argument("--trial", metavar="NAME", help=f"a short attempt: train, measure, record it in "
                        f"{TRIALS_FILE.name}; no checkpoint, no export")
    parser.add_argument("--seeds", type=parse_seeds, default=[SEED], metavar="N,N,...",
                        help=f"with --trial: train once per seed (default {SEED}); several make a seed ensemble, "
                             "recorded member by member and averaged")
    parser.add_argument("--leave-out", metavar="CORPUS", help=f"train without CORPUS, measure on all of it, "
                        f"record it in {LEAVE_OUT_FILE.name}; no checkpoint, no export")
    parser.add_argument("--threads", type=int, default=THREADS, help="TensorFlow intra-op threads")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: measure the exported model again with today's audio path, keeping "
                             "the recorded training details")
    args = parser.parse_args(argv)
    if not 0 <= args.copies <= AUGMENTED_COPIES:
        parser.error(f"--copies must be 0..{AUGMENTED_COPIES}")
    if args.seeds != [SEED] and not args.trial:
        parser.error("--seeds is for --trial runs (an ensemble is measured, not exported)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", force=True)
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    started = time.monotonic()
    config = parse_settings(args.set)

    speech_dir = args.data / "speech" if (args.data / "speech").is_dir() else args.data
    train_records, validation_records = split_records(find_records(speech_dir))
    if args.report_only:
        version_dir = newest_version(args.out, MODEL_NAME)
        recorded = json.loads((REPORT_DIR / "report.json").read_text())["extra"]
        kept = {name: value for name, value in recorded.items()
                if name not in ("model", "speech_detector", "speaker_groups", "corpora", "noise")}
        write_validation_report(version_dir, validation_records, REPORT_DIR, NOISE_SNRS_DB, NOISE_KINDS, SEED,
                                extra=kept)
        print(f"report in {REPORT_DIR}; {(time.monotonic() - started) / 60:.1f} min", flush=True)
        return 0
    print(f"{len(train_records)} training clips, {len(validation_records)} validation clips", flush=True)
    train_windows = build_windows(train_records, AUGMENTED_COPIES, AUGMENT, SEED, RUNS_DIR)
    train_windows = train_windows.select(train_windows.copies <= args.copies)
    validation_windows = build_windows(validation_records, 0, AUGMENT, SEED, RUNS_DIR)
    print(f"{len(train_windows.labels)} training windows, {len(validation_windows.labels)} validation windows, "
          f"{time.monotonic() - started:.0f} s", flush=True)

    if args.leave_out:
        result = leave_one_corpus_out(args.leave_out, config, train_records, validation_records, train_windows,
                                      validation_windows, args.epochs)
        result["copies"] = args.copies
        record_result(LEAVE_OUT_FILE, args.leave_out, result)
        print(f"left out {args.leave_out}: {result['test']}", flush=True)
        return 0
    if args.trial:
        result = trial(config, train_windows, validation_windows, validation_records, args.epochs, args.seeds)
        record_result(TRIALS_FILE, args.trial, {**result, "copies": args.copies})
        print(f"trial {args.trial}: {format_views(result['validation'])}", flush=True)
        return 0

    print(f"training with {config}", flush=True)
    model, validation = train(config, train_windows, validation_windows, validation_records, args.epochs, PATIENCE,
                              checkpoint=True, resume=args.resume)
    print(f"best validation score {validation.state['best_score']:.3f} at epoch {validation.state['best_epoch']}",
          flush=True)
    version_dir = export_savedmodel(model, args.out, MODEL_NAME, "features", (N_FRAMES, N_FEATURES), LABELS,
                                    validation_windows.features[:4])
    print(f"exported {version_dir}", flush=True)
    write_validation_report(
        version_dir, validation_records, REPORT_DIR, NOISE_SNRS_DB, NOISE_KINDS, SEED,
        extra={"config": config, "validation_speakers": VALIDATION_SPEAKERS,
               "selection_note": "epochs and recipe were chosen on these validation speakers (mean of the "
                                 "per-corpus UARs), so these figures are slightly optimistic; the "
                                 "leave-one-corpus-out runs and unseen corpora measure the model without it",
               "augment": AUGMENT.__dict__, "augmented_copies": args.copies,
               "training_clips": len(train_records), "training_windows": int(len(train_windows.labels)),
               "best_epoch": validation.state["best_epoch"], "training_history": validation.state["history"],
               "training_minutes": round(validation.state["training_seconds"] / 60, 1)},
    )
    print(f"report in {REPORT_DIR}; total {(time.monotonic() - started) / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
