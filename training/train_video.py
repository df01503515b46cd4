"""Train the face emotion model from scratch and export it to model_repository/video/<version>/.

    python -m training.train_video --data ../shared/datasets --out model_repository           # search + train
    python -m training.train_video --data ../shared/datasets --out model_repository --resume  # go on from the checkpoint
    python -m training.train_video ... --resume --cycles 14,30,20,45,30   # go on, adding a cycle of 30 epochs

Validation is on faces the model never trains on: a fixed, seeded, stratified FER2013 hold-out (FER2013 has no
subject ids) and CK+48 subjects held out whole (posed faces of another population). Steps: crops through the
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

from fusion_service.features.faces.crop import FACE_SIZE
from fusion_service.features.faces.pipeline import FacePipeline
from protos.emotion.v1.constants import LABELS
from training.export import export_savedmodel, next_version
from training.face_corpora import load_ck48, load_fer2013
from training.face_dataset import (
    augmenter,
    class_weights,
    crop_arrays,
    stratified_holdout,
    subject_holdout,
    training_dataset,
)
from training.reporting import evaluate_predictions, write_report

# ---- configuration ------------------------------------------------------------------------------------------
SEED = 20131
FER_HOLDOUT_FRACTION = 0.10  # stratified, seeded: FER2013 has no subject ids
CK_HOLDOUT_SUBJECT_FRACTION = 0.25  # whole CK+ subjects held out
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
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_fer: np.ndarray  # FER2013 hold-out
    y_fer: np.ndarray
    x_ck: np.ndarray  # CK+ held-out subjects
    y_ck: np.ndarray
    ck_subjects: list[str]
    n_fer_train: int  # the first n_fer_train training rows are FER2013, the rest CK+


def load_splits(data: Path) -> Splits:
    """Crops of both corpora through the serving code, split into training and the two validation sets."""
    pipeline = FacePipeline()
    faces = Path(data) / "faces"
    started = time.time()
    x_fer_all, y_fer_all, _ = crop_arrays(
        [item for item in load_fer2013(faces / "fer2013") if item.split in (None, "train")], pipeline
    )
    x_ck_all, y_ck_all, ck_items = crop_arrays(load_ck48(faces / "ck48"), pipeline)
    fer_train, fer_held = stratified_holdout(y_fer_all, FER_HOLDOUT_FRACTION, SEED)
    ck_train, ck_held = subject_holdout([item.subject for item in ck_items], CK_HOLDOUT_SUBJECT_FRACTION, SEED)
    print(
        f"crops in {time.time() - started:.0f} s: FER2013 {len(fer_train)} train / {len(fer_held)} held out, "
        f"CK+48 {len(ck_train)} train / {len(ck_held)} held out "
        f"({len({ck_items[i].subject for i in ck_held})} subjects)",
        flush=True,
    )
    return Splits(
        x_train=np.concatenate([x_fer_all[fer_train], x_ck_all[ck_train]]),
        y_train=np.concatenate([y_fer_all[fer_train], y_ck_all[ck_train]]),
        x_fer=x_fer_all[fer_held],
        y_fer=y_fer_all[fer_held],
        x_ck=x_ck_all[ck_held],
        y_ck=y_ck_all[ck_held],
        ck_subjects=sorted({ck_items[i].subject for i in ck_held}),
        n_fer_train=len(fer_train),
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
    """Accuracy and UAR on both validation sets; `score` (their mean accuracy) picks trials and epochs."""
    fer = evaluate_predictions([LABELS[i] for i in splits.y_fer], list(predict(model, splits.x_fer)))
    ck = evaluate_predictions([LABELS[i] for i in splits.y_ck], list(predict(model, splits.x_ck)))
    return {
        "fer_accuracy": fer["accuracy"], "fer_uar": fer["uar"],
        "ck_accuracy": ck["accuracy"], "ck_uar": ck["uar"],
        "score": (fer["accuracy"] + ck["accuracy"]) / 2,
    }


def fit(model: keras.Model, x: np.ndarray, y: np.ndarray, config: dict, epochs: int, initial_epoch: int = 0,
        callbacks: list | None = None) -> None:
    weights = class_weights(y, config["class_weight_power"])
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
            fit(model, splits.x_train, splits.y_train, config, end, initial_epoch=state["epoch"],
                callbacks=[checkpoint])
        start = end


def search(splits: Splits) -> dict:
    """Random search with short runs on a subset; every trial is recorded in the report folder."""
    rng = np.random.default_rng(SEED)
    subset = np.concatenate([
        rng.choice(splits.n_fer_train, size=min(SEARCH_TRAIN_SUBSET, splits.n_fer_train), replace=False),
        np.arange(splits.n_fer_train, len(splits.x_train)),
    ])
    x, y = splits.x_train[subset], splits.y_train[subset]
    grid = [dict(zip(SEARCH_SPACE, values)) for values in itertools.product(*SEARCH_SPACE.values())]
    trials = []
    for trial, pick in enumerate(rng.choice(len(grid), size=min(SEARCH_TRIALS, len(grid)), replace=False)):
        config = grid[pick]
        print(f"search trial {trial + 1}/{SEARCH_TRIALS}: {config}", flush=True)
        keras.utils.set_random_seed(SEED)
        started = time.time()
        model = new_model(splits, config, len(x), SEARCH_EPOCHS)
        fit(model, x, y, config, SEARCH_EPOCHS)
        scores = validation_scores(model, splits)
        trials.append({"config": config, **scores, "seconds": round(time.time() - started)})
        print(f"  -> {scores}", flush=True)
    best = max(trials, key=lambda t: t["score"])
    record = {
        "method": f"{SEARCH_TRIALS} distinct random configurations from SEARCH_SPACE (seed {SEED}), {SEARCH_EPOCHS} epochs "
                  f"on {len(x)} training crops ({SEARCH_TRAIN_SUBSET} FER2013 + CK+ training subjects); score = mean "
                  "accuracy on the FER2013 hold-out and the held-out CK+ subjects",
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
    lines = ["# Video model: hyperparameter search", "", record["method"], "",
             "| " + " | ".join(names) + " | FER acc | FER UAR | CK+ acc | CK+ UAR | score | s |",
             "|" + "---|" * (len(names) + 6)]
    for t in record["trials"]:
        lines.append("| " + " | ".join(str(t["config"][n]) for n in names)
                     + f" | {t['fer_accuracy']:.3f} | {t['fer_uar']:.3f} | {t['ck_accuracy']:.3f}"
                     f" | {t['ck_uar']:.3f} | {t['score']:.3f} | {t['seconds']} |")
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
        print(f"epoch {epoch + 1}: FER hold-out acc {scores['fer_accuracy']:.4f} UAR {scores['fer_uar']:.4f} | "
              f"CK+ held-out acc {scores['ck_accuracy']:.4f} UAR {scores['ck_uar']:.4f} | {seconds:.0f} s",
              flush=True)
        if scores["score"] > self.state["best_score"]:
            self.state["best_score"], self.state["best_epoch"] = scores["score"], epoch + 1
            exported = export_savedmodel(
                self.model, self.out, MODEL_NAME, "image", (FACE_SIZE, FACE_SIZE, 1), LABELS,
                self.splits.x_fer[:8], version=self.version,
            )
            write_validation_report(self.model, self.splits, self.config, self.state)
            print(f"  new best (score {scores['score']:.4f}): exported to {exported}, report in {REPORT_DIR}",
                  flush=True)
        save_checkpoint(self.model, self.state)
        write_summary(self.state)


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
    """Full reports (both label views, confusion PNGs) for the FER2013 hold-out and the CK+ held-out subjects."""
    common = {"epoch": state["epoch"], "config": config, "epochs_planned": state["epochs"],
              "training_seconds": state["training_seconds"], "history": state["history"]}
    fer = evaluate_predictions([LABELS[i] for i in splits.y_fer], list(predict(model, splits.x_fer)))
    write_report(fer, REPORT_DIR / "fer2013_holdout", "Video model: FER2013 stratified hold-out",
                 {**common, "holdout": f"{FER_HOLDOUT_FRACTION:.0%} of each class, seed {SEED}"})
    ck = evaluate_predictions([LABELS[i] for i in splits.y_ck], list(predict(model, splits.x_ck)))
    write_report(ck, REPORT_DIR / "ck48_heldout_subjects", "Video model: CK+48 held-out subjects",
                 {**common, "held_out_subjects": splits.ck_subjects})


def write_summary(state: dict) -> None:
    """REPORT_DIR/README.md: the exported epoch on both validation sets, every epoch so far, how to reproduce."""
    views = {"FER2013 stratified hold-out": "fer2013_holdout", "CK+48 held-out subjects": "ck48_heldout_subjects"}
    lines = ["# Video model: validation report", "",
             f"Exported epoch {state['best_epoch']} of {state['epoch']} trained ({state['epochs']} planned, in cosine "
             f"cycles of {state.get('cycles', [state['epochs']])} epochs), "
             f"{state['training_seconds'] / 60:.0f} min of training. Configuration: `{json.dumps(state['config'])}` "
             "(from the [search](search.md)).", "",
             "| validation set | n | accuracy (7) | UAR (7) | accuracy (4) | UAR (4) |", "|---|---:|---:|---:|---:|---:|"]
    for title, folder in views.items():
        report = json.loads((REPORT_DIR / folder / "report.json").read_text())
        lines.append(f"| [{title}]({folder}/report.md) | {report['n']} | {report['accuracy']:.3f} | "
                     f"{report['uar']:.3f} | {report['seed4']['accuracy']:.3f} | {report['seed4']['uar']:.3f} |")
    lines += ["", "| epoch | train loss | FER acc | FER UAR | CK+ acc | CK+ UAR | s |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for h in state["history"]:
        lines.append(f"| {h['epoch']} | {h['loss']:.3f} | {h['fer_accuracy']:.3f} | {h['fer_uar']:.3f} | "
                     f"{h['ck_accuracy']:.3f} | {h['ck_uar']:.3f} | {h['seconds']} |")
    lines += ["", "Reproduce: `python -m training.train_video --data ../shared/datasets --out model_repository` "
              "(add `--resume` to go on from training/checkpoints/video/).", "",
              "Faces in full images (detection, then the crop): [face_detectors.md](face_detectors.md), written by "
              "`python -m training.compare_face_detectors`.", ""]
    (REPORT_DIR / "README.md").write_text("\n".join(lines))


def cycle_lengths(text: str | tuple) -> tuple[int, ...]:
    """'14,30' -> (14, 30)."""
    lengths = tuple(int(part) for part in text.split(",")) if isinstance(text, str) else tuple(text)
    if not lengths or min(lengths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive epoch counts separated by commas, e.g. 14,30")
    return lengths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.train_video", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="datasets folder (has faces/)")
    parser.add_argument("--out", type=Path, default=Path("model_repository"), help="model repository to export to")
    parser.add_argument("--resume", action="store_true", help=f"continue from {CHECKPOINT_DIR}")
    parser.add_argument("--no-search", action="store_true",
                        help=f"use the configuration recorded in {REPORT_DIR / 'search.json'} instead of searching")
    parser.add_argument("--cycles", type=cycle_lengths, default=CYCLES,
                        help="epochs per cosine cycle, comma-separated, e.g. 14,30; with --resume, cycles may be added")
    args = parser.parse_args(argv)
    if not (args.data / "faces").is_dir():
        parser.error(f"{args.data / 'faces'} does not exist: pass --data, the folder holding faces/fer2013 and faces/ck48")

    keras.utils.set_random_seed(SEED)
    splits = load_splits(args.data)
    if args.resume:
        state = json.loads((CHECKPOINT_DIR / "state.json").read_text())
        done = state.get("cycles", [state["epochs"]])
        if list(args.cycles[:len(done)]) != done:
            parser.error(f"--cycles {args.cycles} must begin with the checkpoint's cycles {done}")
        state["cycles"], state["epochs"] = list(args.cycles), sum(args.cycles)
        model = keras.models.load_model(CHECKPOINT_DIR / "last.keras")
        config = state["config"]
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
                 "best_score": -1.0, "best_epoch": 0, "training_seconds": 0, "history": []}
    if state["epoch"] >= state["epochs"]:
        print("training already finished; nothing to do", flush=True)
        return 0
    train_cycles(model, splits, config, state, args.out)
    print(f"done: best epoch {state['best_epoch']} (score {state['best_score']:.4f}), "
          f"{state['training_seconds'] / 60:.0f} min of training", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
