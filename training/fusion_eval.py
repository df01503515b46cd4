"""Paired evaluation of the fusion methods, and the fitting of the learned fusion on validation pairs.

Our corpora hold voices or faces, never both of one person, so a pair is a voice clip and a face image of the
same label, drawn with a seed (FACES_PER_CLIP faces per clip): the question is what fusion makes of two
independent answers about the same emotion. Each answer comes from the served (calibrated) models through the
service's own input code (training.audio_eval / training.video_eval), and each pair is fused by
fusion_service.fusion, the functions the service runs.

    python -m training.evaluate fusion AUDIO_DIR FACE_DIR [--json]   # any corpora, the shipped fusion
    python -m training.fusion_eval --data ../shared/datasets          # validation pairings: fit, choose, report

The second fits the learned fusion on pairs from the fitting half of training.validation_halves (its speakers and
subjects only), chooses the default method on the fitting half (the learned fusion cross-fitted over its two
folds), writes fusion_service/learned_fusion.json, and reports every method on the reporting half, which neither
fitting nor choice saw, in training/reports/fusion/.
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegression

from fusion_service.fusion import FUSION_FUNCTIONS, LEARNED_FUSION_FILE, LOG_FLOOR, Fused, LogisticFusion, learned_logistic
from protos.emotion.v1.constants import LABELS
from training.calibration import calibration_metrics
from training.model_versions import newest_version
from training.reporting import evaluate_predictions

FACES_PER_CLIP = 5
SEED = 15
DEFAULT_WEIGHTS = {"audio": 0.3, "video": 0.7}  # the service's defaults (--audio-weight, --video-weight)
# Forms of the learned fusion tried (two-fold, fitting half): one exponent per modality, or full matrices with an
# intercept at these inverse L2 strengths.
LEARNED_FORMS: dict[str, float | None] = {"per-modality scale": None, "full, C=0.01": 0.01, "full, C=0.1": 0.1,
                                          "full, C=1": 1.0}
TARGET_ECE = 0.06  # a default fusion must be calibrated as well as accurate
REPORT_DIR = Path(__file__).resolve().parent / "reports" / "fusion"

Answer = np.ndarray | None
FusionTable = Mapping[str, Callable[[Mapping[str, Answer], Mapping[str, float]], Fused]]


@dataclass(frozen=True)
class Answers:
    """One modality's answers on one corpus: probabilities (None: no speech / no face), labels, parts."""

    name: str
    probabilities: list[Answer]
    labels: list[str]
    parts: np.ndarray  # training.validation_halves parts; 2 (reporting) for data nothing was fitted on


@dataclass(frozen=True)
class Pairs:
    name: str
    audio: list[Answer]
    video: list[Answer]
    labels: list[str]
    parts: np.ndarray

    def select(self, parts: Sequence[int]) -> Pairs:
        keep = np.isin(self.parts, parts)
        pick = np.flatnonzero(keep)
        return Pairs(self.name, [self.audio[i] for i in pick], [self.video[i] for i in pick],
                     [self.labels[i] for i in pick], self.parts[keep])


def make_pairs(name: str, audio: Answers, video: Answers, seed: int = SEED, per_clip: int = FACES_PER_CLIP) -> Pairs:
    """Each clip with `per_clip` faces of its label from the same part (fewer if fewer exist; none: left out)."""
    rng = np.random.default_rng([seed, *name.encode()])
    video_labels = np.array(video.labels)
    audio_out, video_out, labels, parts = [], [], [], []
    for clip, (label, part) in enumerate(zip(audio.labels, audio.parts)):
        candidates = np.flatnonzero((video_labels == label) & (video.parts == part))
        for face in rng.choice(candidates, size=min(per_clip, len(candidates)), replace=False):
            audio_out.append(audio.probabilities[clip])
            video_out.append(video.probabilities[face])
            labels.append(label)
            parts.append(part)
    return Pairs(name, audio_out, video_out, labels, np.array(parts, dtype=int))


def fused_answers(pairs: Pairs, fuse: Callable, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> list[Answer]:
    return [fuse({"audio": a, "video": v}, weights).probabilities for a, v in zip(pairs.audio, pairs.video)]


def measure(labels: Sequence[str], answers: Sequence[Answer]) -> dict:
    """Accuracy and UAR (a missing answer is an error), ECE and mean confidence of the answers given."""
    report = evaluate_predictions(labels, answers)
    given = [i for i, answer in enumerate(answers) if answer is not None]
    calibration = calibration_metrics(np.array([answers[i] for i in given]).reshape(len(given), len(LABELS)),
                                      np.array([LABELS.index(labels[i]) for i in given], dtype=int))
    return {"n": report["n"], "answered": len(given), "accuracy": report["accuracy"], "uar": report["uar"],
            "mean_confidence": calibration["mean_confidence"], "ece": calibration["ece"]}


def evaluate_pairs(pairs: Pairs, methods: FusionTable) -> dict:
    """Audio alone, video alone and every fusion method on the same pairs."""
    result = {"pairs": len(pairs.labels), "audio": measure(pairs.labels, pairs.audio),
              "video": measure(pairs.labels, pairs.video)}
    result["methods"] = {name: measure(pairs.labels, fused_answers(pairs, fuse)) for name, fuse in methods.items()}
    best_single = max(result["audio"]["uar"], result["video"]["uar"])
    for figures in result["methods"].values():
        figures["uar_gain_over_better_single"] = figures["uar"] - best_single
    return result


def fit_logistic(pairs: Sequence[Pairs], form: str) -> LogisticFusion:
    """Logistic regression on [log p_audio, log p_video] over pairs where both modalities answered, each pairing
    weighing the same: one scale per modality (no intercept), or full matrices with an intercept (LEARNED_FORMS)."""
    features, targets, weights = _design(pairs)
    classes = len(LABELS)
    if LEARNED_FORMS[form] is None:
        return _fit_scales(features, targets, weights)
    model = LogisticRegression(C=LEARNED_FORMS[form], max_iter=3000)
    model.fit(features, targets, sample_weight=weights * len(weights))
    coefficients = np.zeros((classes, 2 * classes))
    intercept = np.full(classes, -30.0)  # a class no fitting pair had: never chosen
    coefficients[model.classes_] = model.coef_
    intercept[model.classes_] = model.intercept_
    return LogisticFusion({"audio": coefficients[:, :classes], "video": coefficients[:, classes:]}, intercept, {})


def _fit_scales(features: np.ndarray, targets: np.ndarray, weights: np.ndarray) -> LogisticFusion:
    """softmax(s_audio * log p_audio + s_video * log p_video): the product of experts with fitted exponents."""
    classes = len(LABELS)
    audio, video = features[:, :classes], features[:, classes:]

    def loss(log_scales: np.ndarray) -> float:
        logits = np.exp(log_scales[0]) * audio + np.exp(log_scales[1]) * video
        return float(-np.sum(weights * log_softmax(logits, axis=1)[np.arange(len(targets)), targets]))

    scales = np.exp(minimize(loss, np.zeros(2), method="L-BFGS-B").x)
    return LogisticFusion({"audio": scales[0] * np.eye(classes), "video": scales[1] * np.eye(classes)},
                          np.zeros(classes), {})


def _design(pairs: Sequence[Pairs]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, label indices and weights (each pairing's pairs together weigh 1 / number of pairings)."""
    rows, targets, weights = [], [], []
    for p in pairs:
        both = [(a, v, label) for a, v, label in zip(p.audio, p.video, p.labels) if a is not None and v is not None]
        rows += [np.log(np.maximum(np.concatenate([a, v]), LOG_FLOOR)) for a, v, _ in both]
        targets += [LABELS.index(label) for _, _, label in both]
        weights += [1.0 / (len(both) * len(pairs))] * len(both)
    return np.array(rows), np.array(targets), np.array(weights)


def learned_table(parameters: LogisticFusion) -> dict:
    return {**FUSION_FUNCTIONS, "learned_logistic": partial(learned_logistic, parameters=parameters)}


def fold_parameters(pairings: Sequence[Pairs], form: str) -> dict[int, LogisticFusion]:
    """Per fold of the fitting half, the learned fusion fitted on the other fold."""
    return {score: fit_logistic([p.select([fit]) for p in pairings], form) for fit, score in ((0, 1), (1, 0))}


def cross_fitted(pairings: Sequence[Pairs], form: str) -> dict[str, dict]:
    """Per pairing and method on the fitting half (the learned fusion out of fold): UAR gain and fused ECE."""
    fitted = fold_parameters(pairings, form)
    results = {}
    for pairs in pairings:
        labels, audio, video = [], [], []
        answers: dict[str, list[Answer]] = {name: [] for name in FUSION_FUNCTIONS}
        for fold, parameters in fitted.items():
            scored = pairs.select([fold])
            labels, audio, video = labels + scored.labels, audio + scored.audio, video + scored.video
            for name, fuse in learned_table(parameters).items():
                answers[name] += fused_answers(scored, fuse)
        best_single = max(measure(labels, audio)["uar"], measure(labels, video)["uar"])
        results[pairs.name] = {}
        for name, fused in answers.items():
            figures = measure(labels, fused)
            results[pairs.name][name] = {"uar_gain": figures["uar"] - best_single, "ece": figures["ece"]}
    return results


def choose_default(gains: dict[str, dict]) -> str:
    """The best worst-case UAR gain among methods whose fused ECE stays within TARGET_ECE on every pairing
    (among all methods when none does)."""
    methods = list(next(iter(gains.values())))
    worst_gain = {m: min(g[m]["uar_gain"] for g in gains.values()) for m in methods}
    calibrated = [m for m in methods if max(g[m]["ece"] for g in gains.values()) <= TARGET_ECE]
    return max(calibrated or methods, key=worst_gain.get)


def choose_form(pairings: Sequence[Pairs]) -> dict[str, float]:
    """Out-of-fold log-loss of the learned fusion per form, on the fitting half, each pairing weighing the same."""
    losses = {}
    for form in LEARNED_FORMS:
        total = 0.0
        for fold, parameters in fold_parameters(pairings, form).items():
            for pairs in pairings:
                scored = pairs.select([fold])
                fused = fused_answers(scored, partial(learned_logistic, parameters=parameters))
                given = [(answer, label) for answer, label in zip(fused, scored.labels) if answer is not None]
                total -= sum(float(np.log(max(a[LABELS.index(label)], 1e-12))) for a, label in given) / len(given)
        losses[form] = total / (2 * len(pairings))
    return losses


def evaluate_folders(audio_dir: Path, face_dir: Path, repository: Path, seed: int = SEED) -> dict:
    """`training.evaluate fusion`: pairs from any two corpora, every method as the service ships it."""
    from training.audio_eval import audio_predictions
    from training.video_eval import video_predictions

    audio_labels, audio = audio_predictions(audio_dir, newest_version(repository, "audio"))
    face_labels, video = video_predictions(face_dir, newest_version(repository, "video"))
    pairs = make_pairs(f"{audio_dir} + {face_dir}", Answers("audio", audio, audio_labels, np.full(len(audio), 2)),
                       Answers("video", video, face_labels, np.full(len(video), 2)), seed)
    if not pairs.labels:
        raise SystemExit(f"no clip in {audio_dir} has a face of its label in {face_dir}: nothing to pair")
    return {"audio_dir": str(audio_dir), "face_dir": str(face_dir), "seed": seed, "faces_per_clip": FACES_PER_CLIP,
            "clips": len(audio), "faces": len(video), **evaluate_pairs(pairs, FUSION_FUNCTIONS)}


def format_pairs_text(result: dict) -> str:
    rows = [("audio alone", result["audio"]), ("video alone", result["video"])]
    rows += [(f"fused: {name}", figures) for name, figures in result["methods"].items()]
    lines = [f"{result['pairs']} pairs ({result['faces_per_clip']} same-label faces per clip, seed {result['seed']})",
             f"{'answer':<32} {'UAR':>6} {'acc':>6} {'conf':>6} {'ECE':>6}"]
    lines += [f"{name:<32} {f['uar']:6.3f} {f['accuracy']:6.3f} {f['mean_confidence']:6.3f} {f['ece']:6.3f}"
              for name, f in rows]
    return "\n".join(lines)


# ---- the validation pairings ----------------------------------------------------------------------------------

NOISY_CORPUS = "ravdess"
NOISE = ("babble", 0.0)  # kind and SNR (dB) that make the voice the weak modality (training/reports/audio)
CACHE_DIR = Path(__file__).resolve().parent / "runs" / "fusion_answers"


def validation_answers(data: Path, repository: Path) -> dict[str, Answers]:
    """Served models' answers on every validation set (and RAVDESS with babble noise), cached per model versions
    in CACHE_DIR (delete the file to measure again after a change to the input code or the data)."""
    versions = f"audio{newest_version(repository, 'audio').name}-video{newest_version(repository, 'video').name}"
    cache = CACHE_DIR / f"{versions}.pkl"
    if cache.is_file():
        return pickle.loads(cache.read_bytes())
    answers = {**_voice_answers(data / "speech", newest_version(repository, "audio")),
               **_face_answers(data / "faces", newest_version(repository, "video"))}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(pickle.dumps(answers))
    return answers


def _voice_answers(speech_dir: Path, model_dir: Path) -> dict[str, Answers]:
    from fusion_service.features.audio import SAMPLE_RATE
    from training.audio_dataset import AugmentConfig, Augmenter, add_noise
    from training.audio_eval import ClipClassifier, load_predictor
    from training.speech_corpora import read_audio
    from training.validation_halves import audio_validation

    records, parts = audio_validation(speech_dir)
    classify = ClipClassifier(load_predictor(model_dir))
    answers = {}
    for corpus in dict.fromkeys(r.corpus for r in records):
        chosen = [i for i, r in enumerate(records) if r.corpus == corpus]
        clips = [read_audio(records[i].path) for i in chosen]
        labels = [records[i].label for i in chosen]
        answers[corpus] = Answers(corpus, [classify(c, SAMPLE_RATE) for c in clips], labels, parts[chosen])
        print(f"voice answers: {corpus} {len(chosen)} clips", flush=True)
        if corpus == NOISY_CORPUS:
            voices: dict[str, list[np.ndarray]] = {}
            for i, clip in zip(chosen, clips):
                voices.setdefault(records[i].speaker, []).append(clip)
            augmenter = Augmenter(AugmentConfig(), voices, SEED)
            kind, snr = NOISE
            noisy = [add_noise(clip, augmenter.noise(len(clip), records[i].speaker, kind), snr)
                     for i, clip in zip(chosen, clips)]
            name = f"{corpus} + {kind} {snr:g} dB"
            answers[name] = Answers(name, [classify(c, SAMPLE_RATE) for c in noisy], labels, parts[chosen])
            print(f"voice answers: {name}", flush=True)
    return answers


def _face_answers(faces_dir: Path, model_dir: Path) -> dict[str, Answers]:
    from training.validation_halves import face_validation
    from training.video_eval import crop_predictions

    answers = {}
    for validation in face_validation(faces_dir):
        answers[validation.corpus] = Answers(validation.corpus, crop_predictions(validation.items, model_dir),
                                             [item.label for item in validation.items], validation.parts)
        print(f"face answers: {validation.corpus} {len(validation.items)} images", flush=True)
    return answers


PAIRINGS = {  # name: (voice answers, face answers); each measured on the reporting halves of both
    "both moderate: RAVDESS + Taiwanese": ("ravdess", "taiwanese"),
    "face weak: RAVDESS + FER2013": ("ravdess", "fer2013"),
    "voice weak: RAVDESS with babble at 0 dB SNR + Taiwanese": ("ravdess + babble 0 dB", "taiwanese"),
    "voice weak: nEMO (Polish) + Taiwanese": ("nemo", "taiwanese"),
    "face near-perfect: RAVDESS + CK+48": ("ravdess", "ck48"),
}


def fit_and_report(data: Path, repository: Path, out: Path = REPORT_DIR, parameters_file: Path = LEARNED_FUSION_FILE
                   ) -> dict:
    started = time.monotonic()
    answers = validation_answers(data, repository)
    pairings = [make_pairs(name, answers[a], answers[v]) for name, (a, v) in PAIRINGS.items()]
    fitting = [p.select([0, 1]) for p in pairings]

    losses = choose_form(fitting)
    form = min(losses, key=losses.get)
    gains = cross_fitted(fitting, form)
    default = choose_default(gains)

    parameters = fit_logistic(fitting, form)
    parameters = LogisticFusion(parameters.coefficients, parameters.intercept, {
        "audio_model_version": int(newest_version(repository, "audio").name),
        "video_model_version": int(newest_version(repository, "video").name),
        "fitted_on": {p.name: len(p.labels) for p in fitting},
        "pairs": f"{FACES_PER_CLIP} same-label faces per clip, seed {SEED}, fitting half of training.validation_halves",
        "form": form,
    })
    parameters.to_json(parameters_file)

    reporting = {p.name: evaluate_pairs(p.select([2]), learned_table(parameters)) for p in pairings}
    report = {"default_method": default, "chosen_by": "the largest worst-case UAR gain over the better single "
              f"modality among methods whose fused ECE is <= {TARGET_ECE} on every pairing, on the fitting half "
              "(learned fusion cross-fitted over its two folds)",
              "fitting_half": gains, "learned_form_log_loss": losses,
              "weights": DEFAULT_WEIGHTS, "learned_fusion": parameters.fitted_for, "reporting_half": reporting,
              "seconds": round(time.monotonic() - started)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "README.md").write_text(markdown(report))
    return report


def markdown(report: dict) -> str:
    lines = ["# Fusion methods on paired validation data", "",
             "A pair is a held-out voice clip and a held-out face image of the same label (5 faces per clip, seeded): "
             "our corpora never hold both of one person, so the pairs measure what fusion makes of two independent "
             "answers about one emotion, not of one person's voice and face. Answers come from the served, calibrated "
             "models through the service's input code; fusion is fusion_service.fusion's. Weights of the fixed "
             f"methods: the service's defaults {report['weights']}.", "",
             "Everything is measured on the **reporting half** of training.validation_halves (RAVDESS actors 19-20, "
             "nEMO speakers SM0 and TP0, half of the FER2013 hold-out, half of the CK+48 held-out subjects, Taiwanese "
             "performers 20, 25 and 30): the "
             "learned fusion was fitted, and the default chosen, on the other half.", "",
             f"**Default: `{report['default_method']}`**, chosen by {report['chosen_by']}. Learned fusion: "
             f"`{report['learned_fusion']['form']}`, the form with the lowest out-of-fold log-loss ("
             + ", ".join(f"{form} {loss:.3f}" for form, loss in report["learned_form_log_loss"].items()) + ").", "",
             "Fitting half (UAR gain over the better single modality / fused ECE):", "",
             "| pairing | " + " | ".join(FUSION_FUNCTIONS) + " |", "|---|" + "---:|" * len(FUSION_FUNCTIONS)]
    for name, methods in report["fitting_half"].items():
        lines.append(f"| {name} | " + " | ".join(f"{methods[m]['uar_gain']:+.3f} / {methods[m]['ece']:.3f}"
                                                   for m in FUSION_FUNCTIONS) + " |")
    lines.append("")
    for name, result in report["reporting_half"].items():
        headroom = 1 - max(result["audio"]["uar"], result["video"]["uar"])
        lines += [f"## {name}", "", f"{result['pairs']} pairs; the largest possible UAR gain over the better single "
                  f"modality is {headroom:+.3f}.", "",
                  "| answer | UAR | accuracy | UAR gain over better single | mean confidence | ECE |",
                  "|---|---:|---:|---:|---:|---:|"]
        for label, figures in [("audio alone", result["audio"]), ("video alone", result["video"])] + [
                (f"fused: {m}" + (" (default)" if m == report["default_method"] else ""), f)
                for m, f in result["methods"].items()]:
            gain = f"{figures['uar_gain_over_better_single']:+.3f}" if "uar_gain_over_better_single" in figures else ""
            lines.append(f"| {label} | {figures['uar']:.3f} | {figures['accuracy']:.3f} | {gain} | "
                         f"{figures['mean_confidence']:.3f} | {figures['ece']:.3f} |")
        lines.append("")
    lines += ["Learned fusion: " + json.dumps(report["learned_fusion"]), "",
              "Reproduce: `python -m training.fusion_eval --data ../shared/datasets` (writes "
              "fusion_service/learned_fusion.json and this report); any other corpora: "
              "`python -m training.evaluate fusion AUDIO_DIR FACE_DIR`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.fusion_eval", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="datasets folder")
    parser.add_argument("--repository", type=Path, default=Path("model_repository"), help="model repository")
    args = parser.parse_args(argv)
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    report = fit_and_report(args.data, args.repository)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
