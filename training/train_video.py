"""Train the face emotion model from scratch and export it to model_repository/video/<version>/.

    python -m training.train_video --data ../shared/datasets --out model_repository           # search + train
    python -m training.train_video --data ../shared/datasets --out model_repository --resume  # go on from the checkpoint
    python -m training.train_video ... --resume --cycles 14,30,20,45,30   # go on, adding a cycle of 30 epochs

Validation is on faces the model never trains on: a fixed, seeded, stratified FER2013 hold-out (FER2013 has no
subject ids), CK+48 subjects held out whole, and a fixed list of Taiwanese performers (posed faces of other
populations; the Taiwanese set is used when the data folder has faces/taiwanese). Training weights every sample so
that classes are balanced within each corpus and FER2013's size does not drown the small corpora (CORPUS_WEIGHT_POWER).
Steps: crops through the
serving code's FacePipeline -> recorded random search (short runs on a subset) -> training with the best
configuration in cosine learning-rate cycles (each a warm restart from the last weights, so training can grow
across sessions), a checkpoint every epoch -> every better epoch exported and reported at once, so the served
model is always the best epoch so far.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fusion_service.features.faces.crop import FACE_SIZE
from fusion_service.features.faces.pipeline import FacePipeline
from protos.emotion.v1.constants import LABELS
from training.export import export_savedmodel, next_version
from training.face_corpora import load_ck48, load_fer2013, load_taiwanese
from training.face_dataset import (
    augmenter,
    corpus_balanced_weights,
    crop_arrays,
    named_holdout,
    stratified_holdout,
    subject_holdout,
    training_dataset,
)
from training.reporting import evaluate_predictions, write_report

# ---- configuration ------------------------------------------------------------------------------------------
SEED = 20131
FER_HOLDOUT_FRACTION = 0.10  # stratified, seeded: FER2013 has no subject ids
CK_HOLDOUT_SUBJECT_FRACTION = 0.25  # whole CK+ subjects held out
# Taiwanese performers held out whole: the ids divisible by five, 6 of the 29 (01-30, no 04), about a fifth.
TAIWANESE_VALIDATION_PERFORMERS = ("05", "10", "15", "20", "25", "30")
# Each corpus's total loss weight scales with (n / corpus size) ** this: 0 = by size (FER2013 ~93% of the crops),
# 1 = every corpus equal (a few hundred CK+ faces weighted 30x: memorised). 0.5: FER2013 ~74%, CK+48 and Taiwanese
# ~13% each.
CORPUS_WEIGHT_POWER = 0.5
THREADS = 1  # TensorFlow intra-op threads (inter-op is 1), so that a shared machine keeps a core for everyone else
WIDTHS = (32, 64, 128, 256)  # VGG-style blocks of two 3x3 convolutions, then 2x2 max-pooling
HEAD_UNITS = 256
WEIGHT_DECAY = 1e-4
BATCH_SIZE = 64
# Epochs per cosine learning-rate cycle (warm restarts); about 2.2 min per epoch on 2 idle cores, 109 epochs
# about 4 h. Each cycle ended better on the validation split: FER2013 0.580, 0.645, 0.661, 0.679.
CYCLES = (14, 30, 20, 45)
WARMUP_FRACTION = 0.05  # of each cycle's steps, linear warm-up before the cosine decay
BATCH_NORM_MOMENTUM = 0.9  # moving statistics that settle within a short search run
# Regularisation is fixed: runs as short as the search's cannot tell what it is worth by the end of training.
AUGMENT_STRENGTH = 1.0  # scales rotation (0.05 turn), shift (0.1), zoom (0.15), brightness (0.2), contrast (0.3)
ERASE_PROBABILITY = 0.25
DROPOUT = 0.4

SEARCH_SPACE = {  # sampled at random (seeded); each trial a short run on a subset, scored on the validation split
    "learning_rate": [1e-3, 2e-3],
    "class_weight_power": [0.5, 1.0],  # 0.5 = half-way to balanced classes, 1 = fully balanced
    "label_smoothing": [0.0, 0.1],
}
SEARCH_TRIALS = 4
SEARCH_EPOCHS = 2
SEARCH_TRAIN_SUBSET = 3000  # FER2013 training images per trial (plus the CK+ training subjects)

MODEL_NAME = "video"
ROOT = Path(__file__).resolve().parent
CHECKPOINT_DIR = ROOT / "checkpoints" / "video"
REPORT_DIR = ROOT / "reports" / "video"
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ValidationSet:
    """One corpus's held-out faces; `key` prefixes its figures in the training history (fer_accuracy, ...)."""

    key: str
    title: str
    folder: str  # report folder under REPORT_DIR
    x: np.ndarray
    y: np.ndarray
    held_out: dict  # what was held out, for the report


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    train_corpus: np.ndarray  # corpus name of every training row (for the corpus balancing)
    validation: list[ValidationSet]


def load_splits(data: Path) -> Splits:
    """Crops of every corpus through the serving code, split into training and one validation set per corpus."""
    pipeline = FacePipeline()
    faces = Path(data) / "faces"
    started = time.time()
    x_fer, y_fer, _ = crop_arrays(
        [item for item in load_fer2013(faces / "fer2013") if item.split in (None, "train")], pipeline
    )
    x_ck, y_ck, ck_items = crop_arrays(load_ck48(faces / "ck48"), pipeline)
    fer_train, fer_held = stratified_holdout(y_fer, FER_HOLDOUT_FRACTION, SEED)
    ck_train, ck_held = subject_holdout([item.subject for item in ck_items], CK_HOLDOUT_SUBJECT_FRACTION, SEED)
    parts = [("fer2013", x_fer, y_fer, fer_train), ("ck48", x_ck, y_ck, ck_train)]
    validation = [
        ValidationSet("fer", "FER2013 stratified hold-out", "fer2013_holdout", x_fer[fer_held], y_fer[fer_held],
                      {"holdout": f"{FER_HOLDOUT_FRACTION:.0%} of each class, seed {SEED}"}),
        ValidationSet("ck", "CK+48 held-out subjects", "ck48_heldout_subjects", x_ck[ck_held], y_ck[ck_held],
                      {"held_out_subjects": sorted({ck_items[i].subject for i in ck_held})}),
    ]
    if (faces / "taiwanese").is_dir():
        x_tw, y_tw, tw_items = crop_arrays(load_taiwanese(faces / "taiwanese"), pipeline)
        tw_train, tw_held = named_holdout([item.subject for item in tw_items], TAIWANESE_VALIDATION_PERFORMERS)
        parts.append(("taiwanese", x_tw, y_tw, tw_train))
        validation.append(ValidationSet(
            "tw", "Taiwanese validation performers", "taiwanese_validation_performers", x_tw[tw_held], y_tw[tw_held],
            {"held_out_performers": sorted({tw_items[i].subject for i in tw_held}),
             "through": "face detection on the full 256x256 images, as live frames"}))
    print(f"crops in {time.time() - started:.0f} s: training "
          + ", ".join(f"{corpus} {len(train)}" for corpus, _, _, train in parts) + "; validation "
          + ", ".join(f"{v.title} {len(v.y)}" for v in validation), flush=True)
    return Splits(
        x_train=np.concatenate([x[train] for _, x, _, train in parts]),
        y_train=np.concatenate([y[train] for _, _, y, train in parts]),
        train_corpus=np.concatenate([np.full(len(train), corpus) for corpus, _, _, train in parts]),
        validation=validation,
    )


def build_model(mean: float, variance: float, dropout: float) -> keras.Model:
    """Input [48, 48, 1] in [0, 1] -> softmax over LABELS; the input normalisation is part of the model."""
    inputs = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="image")
    x = keras.layers.Normalization(axis=None, mean=mean, variance=variance)(inputs)
    for width in WIDTHS:
        for _ in range(2):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = keras.layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM)(x)
            x = keras.layers.Activation("relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Dropout(dropout / 2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(HEAD_UNITS, activation="relu")(x)
    x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(len(LABELS), activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="face_emotion")


def compile_model(model: keras.Model, learning_rate: float, label_smoothing: float, steps_per_epoch: int,
                  epochs: int) -> None:
    """A fresh AdamW with a linear warm-up and cosine decay over `epochs` (the schedule lives in the optimizer state,
    so a checkpoint taken inside a cycle resumes at the same learning rate)."""
    warmup = round(WARMUP_FRACTION * epochs * steps_per_epoch)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10, decay_steps=max(1, epochs * steps_per_epoch - warmup),
        warmup_target=learning_rate, warmup_steps=warmup, alpha=0.01,
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=WEIGHT_DECAY),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing),
        metrics=["accuracy"],
    )


def predict(model: keras.Model, x: np.ndarray) -> np.ndarray:
    return model.predict(x, batch_size=256, verbose=0)


def validation_scores(model: keras.Model, splits: Splits) -> dict:
    """Accuracy and UAR on every validation set; `score` (their mean accuracy) picks trials and epochs."""
    scores = {}
    for validation in splits.validation:
        report = evaluate_predictions([LABELS[i] for i in validation.y], list(predict(model, validation.x)))
        scores[f"{validation.key}_accuracy"], scores[f"{validation.key}_uar"] = report["accuracy"], report["uar"]
    scores["score"] = float(np.mean([scores[f"{v.key}_accuracy"] for v in splits.validation]))
    return scores


def score_sets(splits: Splits) -> list[str]:
    """The validation sets `score` averages over: a checkpoint's best score compares only under the same list."""
    return [validation.key for validation in splits.validation]


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, corpora: np.ndarray, config: dict, epochs: int,
        initial_epoch: int = 0, callbacks: list | None = None) -> None:
    weights = corpus_balanced_weights(y, corpora, config["class_weight_power"], CORPUS_WEIGHT_POWER)
    augment = augmenter(AUGMENT_STRENGTH, ERASE_PROBABILITY, SEED)
    dataset = training_dataset(x, y, weights, BATCH_SIZE, augment, SEED + initial_epoch)
    model.fit(dataset, epochs=epochs, initial_epoch=initial_epoch, callbacks=callbacks or [], verbose=2)


def new_model(splits: Splits, config: dict, n_train: int, epochs: int) -> keras.Model:
    model = build_model(float(splits.x_train.mean()), float(splits.x_train.var()), DROPOUT)
    compile_model(model, config["learning_rate"], config["label_smoothing"], -(-n_train // BATCH_SIZE), epochs)
    return model


def train_cycles(model: keras.Model, splits: Splits, config: dict, state: dict, out: Path) -> None:
    """Run every cycle not yet finished; a cycle that starts here gets a fresh optimizer (a warm restart)."""
    checkpoint = EpochCheckpoint(splits, config, out, state)
    start = 0
    for length in state["cycles"]:
        end = start + length
        if state["epoch"] < end:
            if state["epoch"] == start:
                print(f"cycle of {length} epochs starts at epoch {start + 1}", flush=True)
                compile_model(model, config["learning_rate"], config["label_smoothing"],
                              -(-len(splits.x_train) // BATCH_SIZE), length)
            fit(model, splits.x_train, splits.y_train, splits.train_corpus, config, end,
                initial_epoch=state["epoch"], callbacks=[checkpoint])
        start = end


def search(splits: Splits) -> dict:
    """Random search with short runs on a subset; every trial is recorded in the report folder."""
    rng = np.random.default_rng(SEED)
    fer_rows = np.flatnonzero(splits.train_corpus == "fer2013")
    subset = np.sort(np.concatenate([
        rng.choice(fer_rows, size=min(SEARCH_TRAIN_SUBSET, len(fer_rows)), replace=False),
        np.flatnonzero(splits.train_corpus != "fer2013"),
    ]))
    x, y, corpora = splits.x_train[subset], splits.y_train[subset], splits.train_corpus[subset]
    grid = [dict(zip(SEARCH_SPACE, values)) for values in itertools.product(*SEARCH_SPACE.values())]
    trials = []
    for trial, pick in enumerate(rng.choice(len(grid), size=min(SEARCH_TRIALS, len(grid)), replace=False)):
        config = grid[pick]
        print(f"search trial {trial + 1}/{SEARCH_TRIALS}: {config}", flush=True)
        keras.utils.set_random_seed(SEED)
        started = time.time()
        model = new_model(splits, config, len(x), SEARCH_EPOCHS)
        fit(model, x, y, corpora, config, SEARCH_EPOCHS)
        scores = validation_scores(model, splits)
        trials.append({"config": config, **scores, "seconds": round(time.time() - started)})
        print(f"  -> {scores}", flush=True)
    best = max(trials, key=lambda t: t["score"])
    record = {
        "method": f"{SEARCH_TRIALS} distinct random configurations from SEARCH_SPACE (seed {SEED}), {SEARCH_EPOCHS} epochs "
                  f"on {len(x)} training crops ({SEARCH_TRAIN_SUBSET} FER2013 + the other corpora's training faces); "
                  f"score = mean accuracy over the validation sets ({', '.join(v.title for v in splits.validation)})",
        "fixed": {"augment_strength": AUGMENT_STRENGTH, "erase_probability": ERASE_PROBABILITY, "dropout": DROPOUT,
                  "widths": WIDTHS, "batch_size": BATCH_SIZE, "weight_decay": WEIGHT_DECAY},
        "search_space": SEARCH_SPACE,
        "trials": trials,
        "best": best["config"],
    }
    write_search_record(record)
    return best["config"]


def write_search_record(record: dict) -> None:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "search.json").write_text(json.dumps(record, indent=2) + "\n")
    names = list(SEARCH_SPACE)
    figures = [key for key in record["trials"][0] if key.endswith(("_accuracy", "_uar"))] + ["score"]
    lines = ["# Video model: hyperparameter search", "", record["method"], "",
             "| " + " | ".join(names + figures) + " | s |", "|" + "---|" * (len(names) + len(figures) + 1)]
    for t in record["trials"]:
        lines.append("| " + " | ".join([str(t["config"][n]) for n in names] + [f"{t[f]:.3f}" for f in figures])
                     + f" | {t['seconds']} |")
    lines += ["", f"Fixed: `{json.dumps(record['fixed'])}`", "", f"Chosen: `{json.dumps(record['best'])}`", ""]
    (REPORT_DIR / "search.md").write_text("\n".join(lines))


class EpochCheckpoint(keras.callbacks.Callback):
    """After every epoch: save model + optimizer + state and the summary; when validation improves, export and report.

    A run exports to one new version (replaced at each better epoch); `python -m training.calibrate video` then
    exports it calibrated as the next one, so until then the newest version serves uncalibrated probabilities.
    """

    def __init__(self, splits: Splits, config: dict, out: Path, state: dict) -> None:
        super().__init__()
        self.splits, self.config, self.out, self.state = splits, config, out, state
        self.version = next_version(out / MODEL_NAME)
        self.epoch_started = time.time()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.epoch_started = time.time()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        scores = validation_scores(self.model, self.splits)
        seconds = time.time() - self.epoch_started
        self.state["history"].append({"epoch": epoch + 1, "loss": float(logs["loss"]),
                                      "train_accuracy": float(logs["accuracy"]), **scores,
                                      "seconds": round(seconds)})
        self.state["epoch"] = epoch + 1
        self.state["training_seconds"] = self.state.get("training_seconds", 0) + round(seconds)
        figures = " | ".join(f"{v.title} acc {scores[f'{v.key}_accuracy']:.4f} UAR {scores[f'{v.key}_uar']:.4f}"
                             for v in self.splits.validation)
        print(f"epoch {epoch + 1}: {figures} | score {scores['score']:.4f} | {seconds:.0f} s", flush=True)
        if scores["score"] > self.state["best_score"]:
            self.state["best_score"], self.state["best_epoch"] = scores["score"], epoch + 1
            exported = export_savedmodel(
                self.model, self.out, MODEL_NAME, "image", (FACE_SIZE, FACE_SIZE, 1), LABELS,
                self.splits.validation[0].x[:8], version=self.version,
            )
            write_validation_report(self.model, self.splits, self.config, self.state)
            print(f"  new best (score {scores['score']:.4f}): exported to {exported}, report in {REPORT_DIR}",
                  flush=True)
        save_checkpoint(self.model, self.state)
        write_summary(self.state, self.splits)


def save_checkpoint(model: keras.Model, state: dict) -> None:
    """Model with optimizer state, and the training state, each replaced in one rename."""
    CHECKPOINT_DIR.mkdir(parents=True, exist_ok=True)
    partial = CHECKPOINT_DIR / "last.partial.keras"
    model.save(partial)
    partial.replace(CHECKPOINT_DIR / "last.keras")
    partial_state = CHECKPOINT_DIR / "state.partial.json"
    partial_state.write_text(json.dumps(state, indent=2) + "\n")
    partial_state.replace(CHECKPOINT_DIR / "state.json")


def write_validation_report(model: keras.Model, splits: Splits, config: dict, state: dict) -> None:
    """Full reports (both label views, confusion PNGs) for every validation set."""
    common = {"epoch": state["epoch"], "config": config, "epochs_planned": state["epochs"],
              "training_seconds": state["training_seconds"], "corpus_weight_power": CORPUS_WEIGHT_POWER,
              "history": state["history"]}
    for validation in splits.validation:
        report = evaluate_predictions([LABELS[i] for i in validation.y], list(predict(model, validation.x)))
        write_report(report, REPORT_DIR / validation.folder, f"Video model: {validation.title}",
                     {**common, **validation.held_out})


def write_summary(state: dict, splits: Splits) -> None:
    """REPORT_DIR/README.md: the exported epoch on every validation set, every epoch so far, how to reproduce."""
    lines = ["# Video model: validation report", "",
             f"Best epoch {state['best_epoch']} of {state['epoch']} trained ({state['epochs']} planned, in cosine "
             f"cycles of {state.get('cycles', [state['epochs']])} epochs), "
             f"{state['training_seconds'] / 60:.0f} min of training. Configuration: `{json.dumps(state['config'])}` "
             "(from the [search](search.md)).", "",
             "The best epoch is exported when reached (uncalibrated; `python -m training.calibrate video` exports it "
             "calibrated) and measured here:", "",
             "| validation set | n | accuracy (7) | UAR (7) | accuracy (4) | UAR (4) |", "|---|---:|---:|---:|---:|---:|"]
    for validation in splits.validation:
        path = REPORT_DIR / validation.folder / "report.json"
        if not path.is_file():  # a set that joined after the last exported epoch: its figures are in the history
            lines.append(f"| {validation.title} | {len(validation.y)} | no epoch exported since it joined | | | |")
            continue
        report = json.loads(path.read_text())
        lines.append(f"| [{validation.title}]({validation.folder}/report.md) | {report['n']} | {report['accuracy']:.3f} | "
                     f"{report['uar']:.3f} | {report['seed4']['accuracy']:.3f} | {report['seed4']['uar']:.3f} |")
    keys = [v.key for v in splits.validation]
    lines += ["", "Score (picks the exported epoch): mean accuracy over the validation sets of its epoch (blank: "
              "a set that had not joined yet).", "",
              "| epoch | train loss | " + " | ".join(f"{k} acc | {k} UAR" for k in keys) + " | score | s |",
              "|---:|---:|" + "---:|---:|" * len(keys) + "---:|---:|"]
    for h in state["history"]:
        figures = " | ".join(f"{h[f'{k}_accuracy']:.3f} | {h[f'{k}_uar']:.3f}" if f"{k}_accuracy" in h else " | "
                             for k in keys)
        lines.append(f"| {h['epoch']} | {h['loss']:.3f} | {figures} | {h['score']:.3f} | {h['seconds']} |")
    lines += ["", "Reproduce: `python -m training.train_video --data ../shared/datasets --out model_repository` "
              "(add `--resume` to go on from training/checkpoints/video/).", "",
              "Every recipe and choice tried, with its figure on these validation sets: [attempts.md](attempts.md); "
              "the served model's calibration: [calibration/](calibration/README.md).", "",
              "Faces in full images (detection, then the crop): [face_detectors.md](face_detectors.md), written by "
              "`python -m training.compare_face_detectors`.", ""]
    (REPORT_DIR / "README.md").write_text("\n".join(lines))


def measure_export(version_dir: Path, splits: Splits) -> dict:
    """An exported model's answers (its serving signature, calibration included) on every validation set."""
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    figures = {}
    for validation in splits.validation:
        probabilities = np.concatenate([serve(image=tf.constant(validation.x[start:start + 256]))["probabilities"].numpy()
                                        for start in range(0, len(validation.x), 256)])
        report = evaluate_predictions([LABELS[i] for i in validation.y], list(probabilities))
        figures[validation.title] = {"n": report["n"], "accuracy": report["accuracy"], "uar": report["uar"],
                                     "accuracy_4": report["seed4"]["accuracy"], "uar_4": report["seed4"]["uar"],
                                     "per_class_recall": report["per_class_recall"]}
    return {"model": str(version_dir), "validation": figures}


def cycle_lengths(text: str | tuple) -> tuple[int, ...]:
    """'14,30' -> (14, 30)."""
    lengths = tuple(int(part) for part in text.split(",")) if isinstance(text, str) else tuple(text)
    if not lengths or min(lengths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive epoch counts separated by commas, e.g. 14,30")
    return lengths


def use_threads(threads: int) -> None:
    """TensorFlow's thread pools, which can only be sized before its first operation; a caller in whose process
    TensorFlow already runs (a test) keeps the pools it has."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        print(f"TensorFlow is already running: --threads {threads} not applied", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_video", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="datasets folder (has faces/)")
    parser.add_argument("--out", type=Path, default=Path("model_repository"), help="model repository to export to")
    parser.add_argument("--resume", action="store_true", help=f"continue from {CHECKPOINT_DIR}")
    parser.add_argument("--no-search", action="store_true",
                        help=f"use the configuration recorded in {REPORT_DIR / 'search.json'} instead of searching")
    parser.add_argument("--cycles", type=cycle_lengths, default=CYCLES,
                        help="epochs per cosine cycle, comma-separated, e.g. 14,30; with --resume, cycles may be added")
    parser.add_argument("--threads", type=int, default=THREADS, help="TensorFlow intra-op threads")
    parser.add_argument("--measure", type=Path, metavar="VERSION_DIR",
                        help="train nothing: print an exported model's figures on the validation sets as JSON")
    args = parser.parse_args(argv)
    use_threads(args.threads)
    if not (args.data / "faces").is_dir():
        parser.error(f"{args.data / 'faces'} does not exist: pass --data, the folder holding faces/fer2013 and faces/ck48")

    keras.utils.set_random_seed(SEED)
    splits = load_splits(args.data)
    if args.measure:
        print(json.dumps(measure_export(args.measure, splits)), flush=True)
        return 0
    if args.resume:
        state = json.loads((CHECKPOINT_DIR / "state.json").read_text())
        done = state.get("cycles", [state["epochs"]])
        if list(args.cycles[:len(done)]) != done:
            parser.error(f"--cycles {args.cycles} must begin with the checkpoint's cycles {done}")
        state["cycles"], state["epochs"] = list(args.cycles), sum(args.cycles)
        model = keras.models.load_model(CHECKPOINT_DIR / "last.keras")
        config = state["config"]
        if state.get("score_sets", ["fer", "ck"]) != score_sets(splits):
            # The validation sets changed (a corpus joined): scores compare only on the same sets, so the bar
            # for exporting is the checkpoint's own score on the new ones.
            state["score_sets"], state["best_score"] = score_sets(splits), validation_scores(model, splits)["score"]
            print(f"validation sets are now {state['score_sets']}: checkpoint scores {state['best_score']:.4f}",
                  flush=True)
        print(f"resuming after epoch {state['epoch']} of {state['epochs']} (best score {state['best_score']:.4f} "
              f"at epoch {state['best_epoch']})", flush=True)
    else:
        if args.no_search:
            config = json.loads((REPORT_DIR / "search.json").read_text())["best"]
        else:
            config = search(splits)
        print(f"training with {config} in cycles of {args.cycles} epochs", flush=True)
        keras.utils.set_random_seed(SEED)
        model = build_model(float(splits.x_train.mean()), float(splits.x_train.var()), DROPOUT)
        state = {"config": config, "cycles": list(args.cycles), "epochs": sum(args.cycles), "epoch": 0,
                 "best_score": -1.0, "best_epoch": 0, "training_seconds": 0, "score_sets": score_sets(splits),
                 "history": []}
    if state["epoch"] >= state["epochs"]:
        print("training already finished; nothing to do", flush=True)
        return 0
    train_cycles(model, splits, config, state, args.out)
    print(f"done: best epoch {state['best_epoch']} (score {state['best_score']:.4f}), "
          f"{state['training_seconds'] / 60:.0f} min of training", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
