"""Calibrate an exported model on its validation speakers or subjects and export it, calibrated, as the next version.

    python -m training.calibrate audio --fit-on all --data ../shared/datasets --out model_repository
    python -m training.calibrate video --data ../shared/datasets --out model_repository

The step after training (`make train-audio` / `make train-video` run it), and how the served models were
calibrated without retraining. The model's own answers come from the newest version's `uncalibrated` signature
(or, for a version exported before calibration existed, its serving signature).

--fit-on half (the default): temperature and vector scaling are compared by two-fold cross-validated NLL on the
fitting half of training.validation_halves; the better one is fitted on the whole fitting half, and ECE, NLL and
reliability diagrams before and after are measured on the reporting half, per corpus. The same method is also
cross-fitted by speaker on all validation speakers/subjects (each held out in turn, fitted on the others) and
reported beside: more speakers, a steadier figure.

--fit-on all: a temperature is chosen by cross-fitted NLL among training.calibration.CANDIDATES and fitted on
every validation speaker/subject; its figures are the cross-fitted ones. No reporting half is left unseen, so use
it only where what is measured downstream on that half hardly depends on the calibrator (the voice model's
temperature: the learned fusion's form "per-modality scale" multiplies each modality's log-probabilities by a
fitted factor, which takes up a temperature exactly for one window, and nearly for a clip whose windows'
probabilities are averaged).

The calibrated model is exported as the next version and older versions are removed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from fusion_service.features.audio import N_FEATURES, N_FRAMES, SAMPLE_RATE, AudioFeatureExtractor
from fusion_service.features.audio_input import prepare_audio
from fusion_service.features.faces.pipeline import FACE_SIZE, FacePipeline
from fusion_service.features.speech import SpeechDetector
from protos.emotion.v1.constants import LABELS
from training import calibration as cal
from training.export import (
    PROBABILITIES_KEY,
    SIGNATURE_NAME,
    UNCALIBRATED_SIGNATURE_NAME,
    export_savedmodel,
    next_version,
    read_calibration,
)
from training.model_versions import newest_version
from training.face_corpora import face_crop_of
from training.speech_corpora import read_audio
from training.validation_halves import FIT_FOLDS, REPORT_PART, FaceValidation, audio_validation, face_validation

REPORTS = Path(__file__).resolve().parent / "reports"
BATCH_SIZE = 256


@dataclass(frozen=True)
class ModelSpec:
    input_key: str
    input_shape: tuple[int, ...]


SPECS = {"audio": ModelSpec("features", (N_FRAMES, N_FEATURES)), "video": ModelSpec("image", (FACE_SIZE, FACE_SIZE, 1))}


@dataclass
class CalibrationSet:
    """One corpus's validation samples: model inputs per sample ([windows, ...]; a face is one window), and per
    sample its part (training.validation_halves) and its speaker or subject, the unit that cross-fitting holds out."""

    corpus: str
    inputs: list[np.ndarray]
    labels: np.ndarray
    parts: np.ndarray
    groups: np.ndarray


def raw_endpoint(version_dir: Path) -> str:
    """The signature that answers without calibration."""
    loaded = tf.saved_model.load(str(version_dir))
    if UNCALIBRATED_SIGNATURE_NAME in loaded.signatures:
        return UNCALIBRATED_SIGNATURE_NAME
    recorded = read_calibration(version_dir)
    if recorded is not None and recorded["method"] != "none":
        raise SystemExit(f"{version_dir} is calibrated but has no {UNCALIBRATED_SIGNATURE_NAME!r} signature; "
                         "calibrate the model it was made from instead")
    return SIGNATURE_NAME


class RawModel(keras.Model):
    """The exported model's uncalibrated probabilities as a Keras model, to export again with a calibration."""

    def __init__(self, version_dir: Path, endpoint: str, input_shape: tuple[int, ...], **kwargs) -> None:
        super().__init__(**kwargs)
        self.served = keras.layers.TFSMLayer(str(version_dir), call_endpoint=endpoint)
        self(np.zeros((1, *input_shape), dtype=np.float32))  # builds it: Keras exports built models only

    def call(self, inputs):
        return self.served(inputs)[PROBABILITIES_KEY]


def predict_windows(model: RawModel, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Raw probabilities per sample ([windows, classes]), predicted in batches."""
    if not inputs:
        return []
    stacked = np.concatenate(inputs).astype(np.float32)
    rows = np.concatenate([np.asarray(model(stacked[i:i + BATCH_SIZE])) for i in range(0, len(stacked), BATCH_SIZE)])
    return np.split(rows, np.cumsum([len(x) for x in inputs])[:-1])


def audio_sets(data: Path) -> list[CalibrationSet]:
    """Speech windows of every validation clip with at least one (clips without speech get no answer to calibrate)."""
    speech_dir = data / "speech" if (data / "speech").is_dir() else data
    records, parts = audio_validation(speech_dir)
    extractor, detector = AudioFeatureExtractor(), SpeechDetector()
    sets = []
    for corpus in dict.fromkeys(record.corpus for record in records):
        inputs, labels, kept_parts, speakers = [], [], [], []
        for record, part in zip(records, parts):
            if record.corpus != corpus:
                continue
            clip = read_audio(record.path)
            features = prepare_audio(clip, SAMPLE_RATE, extractor=extractor, detector=detector).features
            if len(features):
                inputs.append(features)
                labels.append(LABELS.index(record.label))
                kept_parts.append(part)
                speakers.append(record.speaker)
        sets.append(CalibrationSet(corpus, inputs, np.array(labels), np.array(kept_parts), np.array(speakers)))
    return sets


def video_sets(data: Path) -> list[CalibrationSet]:
    pipeline = FacePipeline()
    sets = []
    for validation in face_validation(data / "faces"):
        inputs = [face_crop_of(item, pipeline)[None] for item in validation.items]
        labels = np.array([LABELS.index(item.label) for item in validation.items])
        sets.append(CalibrationSet(validation.corpus, inputs, labels, validation.parts, face_groups(validation)))
    return sets


def face_groups(validation: FaceValidation) -> np.ndarray:
    """The subject of each face; FER2013 has no subject ids, so its stratified part stands in for one."""
    if validation.corpus == "fer2013":
        return np.array([f"fer2013:part{part}" for part in validation.parts])
    return np.array([f"{validation.corpus}:{item.subject}" for item in validation.items])


LOADERS: dict[str, Callable[[Path], list[CalibrationSet]]] = {"audio": audio_sets, "video": video_sets}


def select(windows: list[list[np.ndarray]], sets: list[CalibrationSet], parts: Sequence[int]
           ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Samples (all corpora together) whose part is in `parts`, and weights that give each corpus the same total."""
    chosen, labels, weights = [], [], []
    for corpus_windows, s in zip(windows, sets):
        picked = [(w, label) for w, label, part in zip(corpus_windows, s.labels, s.parts) if part in parts]
        chosen += [w for w, _ in picked]
        labels += [label for _, label in picked]
        weights += [1.0 / max(len(picked), 1)] * len(picked)
    return chosen, np.array(labels), np.array(weights)


def choose_method(windows: list[list[np.ndarray]], sets: list[CalibrationSet]) -> dict[str, float]:
    """Two-fold cross-validated NLL of each method on the fitting half (fit on one fold, score on the other),
    each corpus counting the same."""
    scores = {}
    for method in cal.METHODS:
        total, count = 0.0, 0
        for fit_fold in FIT_FOLDS:
            score_fold = [f for f in FIT_FOLDS if f != fit_fold]
            fitted = cal.fit(method, *select(windows, sets, [fit_fold]))
            samples, labels, weights = select(windows, sets, score_fold)
            true = cal.pooled(fitted, samples)[np.arange(len(labels)), labels]
            total -= float(np.sum(weights * np.log(np.maximum(true, 1e-12))))
            count += float(weights.sum())
        scores[method] = total / count
    return scores


def raw_windows(modality: str, data: Path, model_dir: Path
                ) -> tuple[list[CalibrationSet], list[list[np.ndarray]], RawModel, str]:
    """The validation sets and the model's uncalibrated answers on them (per corpus, per sample [windows, classes]),
    with the model and the signature that gave them."""
    started = time.monotonic()
    endpoint = raw_endpoint(model_dir)
    model = RawModel(model_dir, endpoint, SPECS[modality].input_shape)
    sets = LOADERS[modality](data)
    windows = [predict_windows(model, s.inputs) for s in sets]
    print(f"{modality}: raw answers of {model_dir} ({endpoint!r}) on "
          + ", ".join(f"{s.corpus} {len(s.labels)}" for s in sets) + f" samples, {time.monotonic() - started:.0f} s",
          flush=True)
    return sets, windows, model, endpoint


FIT_ON = {
    "half": "training.validation_halves: fitted on parts 0+1, measured on part 2 (other speakers/subjects)",
    "all": "fitted on every validation speaker/subject; measured cross-fitted (each held out in turn, fitted on the "
           "others)",
}


@dataclass
class Fitted:
    """A calibrator, what chose it and what it was fitted on, and the figures that measure it."""

    calibration: cal.Calibration
    method: str
    fitted_on: dict[str, int]
    figures: dict


def calibrate(modality: str, data: Path, repository: Path, model_dir: Path | None = None,
              report_dir: Path | None = None, fit_on: str = "half") -> Path:
    """Fit, report and export; returns the new version directory."""
    started = time.monotonic()
    model_dir = model_dir or newest_version(repository, modality)
    report_dir = report_dir or REPORTS / modality / "calibration"
    report_dir.mkdir(parents=True, exist_ok=True)
    sets, windows, model, endpoint = raw_windows(modality, data, model_dir)
    fit = {"half": fit_on_fitting_half, "all": fit_on_every_speaker}[fit_on]
    fitted = fit(modality, sets, windows, report_dir)
    print(f"{fitted.method}: {fitted.calibration.to_dict()}", flush=True)

    details = {"fitted_on": fitted.fitted_on, "source_model": str(model_dir), "source_signature": endpoint,
               "split": FIT_ON[fit_on]}
    if "cross_validated_nll" in fitted.figures:
        details["cross_validated_nll"] = fitted.figures["cross_validated_nll"]
    version_dir = export_savedmodel(
        model, repository, modality, SPECS[modality].input_key, SPECS[modality].input_shape, LABELS,
        np.concatenate(sets[0].inputs[:4])[:8], version=next_version(repository / modality),
        calibration=fitted.calibration, calibration_details=details,
    )
    removed = remove_older_versions(repository / modality, keep=version_dir)
    report = {"model": str(version_dir), "fit_on": fit_on, "method": fitted.method,
              "calibration": fitted.calibration.to_dict(), **details, **fitted.figures, "ece_bins": cal.ECE_BINS,
              "removed_versions": removed, "seconds": round(time.monotonic() - started)}
    (report_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (report_dir / "README.md").write_text(markdown(modality, report))
    print(f"exported {version_dir} (removed {removed}); report in {report_dir}", flush=True)
    return version_dir


def fit_on_fitting_half(modality: str, sets: list[CalibrationSet], windows: list[list[np.ndarray]],
                        report_dir: Path) -> Fitted:
    """Method by two-fold cross-validated NLL on the fitting half, fitted on that half; figures on the reporting
    half, which it never saw, and the same method cross-fitted by speaker on all validation samples."""
    cross_validated = choose_method(windows, sets)
    method = min(cross_validated, key=cross_validated.get)
    calibration = cal.fit(method, *select(windows, sets, FIT_FOLDS))

    per_corpus = {}
    identity = cal.Calibration.identity(len(LABELS))
    for corpus_windows, s in zip(windows, sets):
        samples, labels, _ = select([corpus_windows], [s], [REPORT_PART])
        before, after = cal.pooled(identity, samples), cal.pooled(calibration, samples)
        per_corpus[s.corpus] = {"before": cal.calibration_metrics(before, labels),
                                "after": cal.calibration_metrics(after, labels),
                                "ece_noise_floor_after": cal.ece_noise_floor(after)}
        cal.plot_reliability({"before": (before, labels), "after": (after, labels)},
                             report_dir / f"reliability_{s.corpus}.png",
                             f"{modality} model, {s.corpus} reporting half")

    data = cross_fit_data(sets, windows)
    cross_fitted = {"before": cal.per_corpus_figures(cal.pooled(identity, data.samples), data),
                    "after": cal.per_corpus_figures(cal.cross_fit(cal.Candidate(method, method, "corpus"), data), data)}
    return Fitted(calibration, method, {s.corpus: int(np.isin(s.parts, FIT_FOLDS).sum()) for s in sets},
                  {"cross_validated_nll": cross_validated, "reporting_half": per_corpus,
                   "cross_fitted_by_speaker": cross_fitted})


def fit_on_every_speaker(modality: str, sets: list[CalibrationSet], windows: list[list[np.ndarray]],
                         report_dir: Path) -> Fitted:
    """The temperature of training.calibration.CANDIDATES that its declared rule picks by cross-fitted NLL, fitted
    on every validation sample: more speakers than a half, so a scale less tied to a few of them. Temperatures
    only: one shared scale is what the learned fusion's factor takes up (a bias per class is not). Its figures are the
    cross-fitted ones, the only ones left that no calibrator saw."""
    data = cross_fit_data(sets, windows)
    temperatures = [c for c in cal.CANDIDATES if c.method == "temperature"]
    comparison = cal.compare_cross_fitted(data, temperatures)
    candidate = next(c for c in temperatures if c.name == comparison["chosen"])
    before = cal.pooled(cal.Calibration.identity(len(LABELS)), data.samples)
    after = cal.cross_fit(candidate, data)
    for corpus in dict.fromkeys(data.corpora.tolist()):
        members = data.corpora == corpus
        cal.plot_reliability({"before": (before[members], data.labels[members]),
                              "after, cross-fitted": (after[members], data.labels[members])},
                             report_dir / f"reliability_{corpus}.png",
                             f"{modality} model, {corpus}, all validation speakers/subjects")
    return Fitted(cal.fit_candidate(candidate, data), candidate.name,
                  {s.corpus: len(s.labels) for s in sets}, {"cross_fitted": comparison})


def cross_fit_data(sets: Sequence[CalibrationSet], windows: Sequence[Sequence[np.ndarray]]) -> cal.CrossFitData:
    """Every validation sample of every corpus in one, for cross-fitting by speaker/subject."""
    return cal.CrossFitData([w for corpus_windows in windows for w in corpus_windows],
                            np.concatenate([s.labels for s in sets]),
                            np.concatenate([np.full(len(s.labels), s.corpus) for s in sets]),
                            np.concatenate([s.groups for s in sets]), np.concatenate([s.parts for s in sets]))


def remove_older_versions(model_dir: Path, keep: Path) -> list[str]:
    """Older version directories go, so the repository holds the served model only (git keeps the history)."""
    removed = []
    for path in sorted(model_dir.iterdir()):
        if path.is_dir() and path.name.isdigit() and int(path.name) < int(keep.name):
            shutil.rmtree(path)
            removed.append(path.name)
    return removed


ECE_NOTES = [
    f"ECE: {cal.ECE_BINS} equal-width bins of the top answer's confidence.", "",
    "ECE floor: the mean ECE a perfectly calibrated model with the same answers would show at this n "
    "(labels drawn from the calibrated probabilities); with few samples ECE cannot be measured below it.", "",
]


def markdown(modality: str, report: dict) -> str:
    body = markdown_every_speaker(report) if report["fit_on"] == "all" else markdown_fitting_half(report)
    corpora = report["fitted_on"]
    option = " --fit-on all" if report["fit_on"] == "all" else ""
    return "\n".join([f"# {modality.capitalize()} model: calibration", "", *body, "",
                      *[f"![{corpus}](reliability_{corpus}.png)" for corpus in corpora], "",
                      f"Reproduce: `python -m training.calibrate {modality}{option} --data ../shared/datasets "
                      f"--out model_repository` (the step after training in `make train-{modality}`).", ""])


def markdown_fitting_half(report: dict) -> list[str]:
    lines = [f"Served model `{report['model']}`: **{report['method']} scaling** inside the SavedModel "
             f"(`{report['calibration']['formula']}`), fitted on the fitting half of the validation "
             f"speakers/subjects ({report['fitted_on']}) and measured here on the reporting half, which it never saw "
             f"({report['split']}). Method chosen by two-fold cross-validated NLL on the fitting half: "
             + ", ".join(f"{k} {v:.3f}" for k, v in report["cross_validated_nll"].items()) + ".", "", *ECE_NOTES,
             "| corpus (reporting half) | n | accuracy before | after | ECE before | after | ECE floor | "
             "NLL before | after | mean confidence before | after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for corpus, views in report["reporting_half"].items():
        b, a = views["before"], views["after"]
        lines.append(f"| {corpus} | {b['n']} | {b['accuracy']:.3f} | {a['accuracy']:.3f} | {b['ece']:.3f} | "
                     f"{a['ece']:.3f} | {views['ece_noise_floor_after']:.3f} | {b['nll']:.3f} | {a['nll']:.3f} | "
                     f"{b['mean_confidence']:.3f} | {a['mean_confidence']:.3f} |")
    lines += ["", f"All validation speakers/subjects, cross-fitted by speaker: each speaker/subject (FER2013: each "
              f"stratified part) calibrated by {report['method']} scaling fitted as above (corpora weighted "
              "equally) on the validation samples of all the others, both halves: the figures of the recipe on "
              "every validation speaker, not of the served calibrator itself (training.calibration.cross_fit; "
              "`python -m training.cross_fit` compares other calibrators this way):", "",
              "| corpus (all validation) | n | accuracy before | after | ECE before | after | ECE floor | "
              "NLL before | after | mean confidence before | after |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for corpus, b in report["cross_fitted_by_speaker"]["before"].items():
        a = report["cross_fitted_by_speaker"]["after"][corpus]
        lines.append(f"| {corpus} | {b['n']} | {b['accuracy']:.3f} | {a['accuracy']:.3f} | {b['ece']:.3f} | "
                     f"{a['ece']:.3f} | {a['ece_noise_floor']:.3f} | {b['nll']:.3f} | {a['nll']:.3f} | "
                     f"{b['mean_confidence']:.3f} | {a['mean_confidence']:.3f} |")
    return lines


def markdown_every_speaker(report: dict) -> list[str]:
    comparison = report["cross_fitted"]
    return [f"Served model `{report['model']}`: **{report['method']}** inside the SavedModel "
            f"(`{report['calibration']['formula']}`, scale {report['calibration']['scale'][0]:.4f}, temperature "
            f"{1 / report['calibration']['scale'][0]:.3f}), {report['split']}: {report['fitted_on']} samples. "
            f"Chosen among the temperatures of training.calibration.CANDIDATES by the rule {comparison['rule']}.", "",
            "Each speaker/subject (FER2013: each stratified part) is calibrated by the candidate fitted on all the "
            "other validation samples, so every figure below is of answers whose calibrator never saw their "
            "speaker; the served calibrator is the chosen one fitted on them all. Reliability diagrams: all "
            "validation samples of a corpus, raw and cross-fitted.", "", *ECE_NOTES, cal.cross_fit_table(comparison)]


def single_threaded() -> None:
    """One TensorFlow thread, so that a shared machine keeps a core for everyone else."""
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("modality", choices=sorted(LOADERS))
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="datasets folder")
    parser.add_argument("--out", type=Path, default=Path("model_repository"), help="model repository")
    parser.add_argument("--model", type=Path, help="exported version to calibrate (default: the newest)")
    parser.add_argument("--fit-on", choices=sorted(FIT_ON), default="half",
                        help="half: fit on the fitting half, measure on the reporting half; all: fit on every "
                        "validation speaker/subject, measure cross-fitted (default: half)")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"data folder {args.data} does not exist")
    single_threaded()
    calibrate(args.modality, args.data, args.out, args.model, fit_on=args.fit_on)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
