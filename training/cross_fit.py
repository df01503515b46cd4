"""Cross-fitted calibration: every validation sample calibrated by a calibrator that never saw its speaker/subject.

    python -m training.cross_fit audio --data ../shared/datasets --cache /tmp/raw_audio.npz
    python -m training.cross_fit video --data ../shared/datasets --cache /tmp/raw_video.npz

Unlike training.calibrate's halves, all validation speakers are measured: each speaker (FER2013: each stratified
part) is held out in turn, the calibrator is fitted on the other validation samples of all corpora and applied
to it. Every candidate of training.calibration.CANDIDATES is compared this way, per corpus, before and after.
The model's raw answers take minutes to compute (decoding, features, Predict); --cache keeps them in a file
outside the repository so that a second run only fits.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training import calibration as cal
from training.calibrate import FIT_ON, cross_fit_data, raw_windows, single_threaded
from training.export import read_calibration
from training.model_versions import DEFAULT_REPOSITORY, newest_version
from training.validation_halves import REPORT_PART


def save_raw(path: Path, data: cal.CrossFitData) -> None:
    """The raw answers of every validation sample, with its label, corpus, speaker/subject and part, in one .npz."""
    np.savez(path, windows=np.concatenate(data.samples), counts=np.array([len(s) for s in data.samples]),
             labels=data.labels, corpora=data.corpora.astype(str), groups=data.groups.astype(str), parts=data.parts)


def load_raw(path: Path) -> cal.CrossFitData:
    with np.load(path) as stored:
        samples = np.split(stored["windows"], np.cumsum(stored["counts"])[:-1])
        return cal.CrossFitData(samples, stored["labels"], stored["corpora"], stored["groups"], stored["parts"])


def raw_answers(modality: str, data: Path, model_dir: Path, cache: Path | None) -> cal.CrossFitData:
    """The uncalibrated answers of the model on its validation sets, from `cache` when it exists (else kept there)."""
    if cache is not None and cache.exists():
        print(f"raw answers from {cache}", flush=True)
        return load_raw(cache)
    single_threaded()
    answers = cross_fit_data(*raw_windows(modality, data, model_dir)[:2])
    if cache is not None:
        save_raw(cache, answers)
    return answers


def against_served(data: cal.CrossFitData, chosen: str, served: cal.Calibration) -> dict[str, dict]:
    """On the reporting half (speakers the served calibrator never saw), per corpus: the served calibrator's
    figures and the chosen candidate's cross-fitted ones, both out of speaker."""
    candidate = next(c for c in cal.CANDIDATES if c.name == chosen)
    reporting = data.parts == REPORT_PART
    held = data.subset(reporting)
    answers = {"served": cal.pooled(served, held.samples), "cross_fitted": cal.cross_fit(candidate, data)[reporting]}
    return {**{name: cal.per_corpus_figures(a, held) for name, a in answers.items()},
            **{f"{name}_per_speaker": cal.per_corpus_figures(a, held, by="groups") for name, a in answers.items()}}


def served_table(figures: dict[str, dict], chosen: str, served: cal.Calibration) -> str:
    """against_served's figures as Markdown tables, per corpus and per speaker/subject."""
    lines = [f"Reporting half only: served {served.method} scaling (fitted on the fitting half) against {chosen} "
             "cross-fitted (fitted on all other speakers/subjects):", "",
             "| corpus | n | accuracy | NLL served | cross-fitted | ECE served | cross-fitted | ECE floor served | "
             "mean confidence served | cross-fitted |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for corpus, a in figures["served"].items():
        b = figures["cross_fitted"][corpus]
        lines.append(f"| {corpus} | {a['n']} | {a['accuracy']:.3f} | {a['nll']:.3f} | {b['nll']:.3f} | "
                     f"{a['ece']:.3f} | {b['ece']:.3f} | {a['ece_noise_floor']:.3f} | {a['mean_confidence']:.3f} | "
                     f"{b['mean_confidence']:.3f} |")
    lines.append(f"| mean over corpora | | | {np.mean([f['nll'] for f in figures['served'].values()]):.4f} | "
                 f"{np.mean([f['nll'] for f in figures['cross_fitted'].values()]):.4f} | | | | | |")
    lines += ["", "| speaker/subject (reporting half) | n | NLL served | cross-fitted | mean confidence served | "
              "cross-fitted | accuracy |", "|---|---:|---:|---:|---:|---:|---:|"]
    for group, a in figures["served_per_speaker"].items():
        b = figures["cross_fitted_per_speaker"][group]
        lines.append(f"| {group} | {a['n']} | {a['nll']:.3f} | {b['nll']:.3f} | {a['mean_confidence']:.3f} | "
                     f"{b['mean_confidence']:.3f} | {a['accuracy']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.cross_fit", description=__doc__.split("\n")[0])
    parser.add_argument("modality", choices=("audio", "video"))
    parser.add_argument("--data", type=Path, default=Path("../shared/datasets"), help="datasets folder")
    parser.add_argument("--model", type=Path, help="exported version (default: the newest in model_repository)")
    parser.add_argument("--cache", type=Path, help="file for the raw answers (read when it exists); keep it "
                        "outside the repository, it is derived from the datasets")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    if not (args.cache and args.cache.exists()) and not args.data.is_dir():
        parser.error(f"data folder {args.data} does not exist")
    model_dir = args.model or newest_version(DEFAULT_REPOSITORY, args.modality)
    data = raw_answers(args.modality, args.data, model_dir, args.cache)
    figures = cal.compare_cross_fitted(data)
    print(cal.cross_fit_table(figures))
    recorded = read_calibration(model_dir)
    # Against the served calibrator only where it left speakers unseen (fitted on the fitting half).
    if recorded is not None and recorded["method"] != "none" and recorded.get("split") == FIT_ON["half"]:
        served = cal.Calibration.from_dict(recorded)
        figures["reporting_half"] = against_served(data, figures["chosen"], served)
        print("\n" + served_table(figures["reporting_half"], figures["chosen"], served))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
