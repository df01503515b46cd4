"""Classify audio files the way the live service does: prepare_audio (windows, speech filter, features),
the exported SavedModel, then pool_window_probabilities. A file without a speech window gets no prediction.

Also the validation report of a trained model: both label views, per speaker group, and with noise added.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from fusion_service.features.audio import SAMPLE_RATE, AudioFeatureExtractor
from fusion_service.features.audio_input import pool_window_probabilities, prepare_audio
from fusion_service.features.speech import SpeechDetector
from training.audio_dataset import AugmentConfig, Augmenter, add_noise
from training.reporting import evaluate_predictions, write_report
from training.speech_corpora import SpeechRecord, find_records, read_audio, read_samples

Predict = Callable[[np.ndarray], np.ndarray]


def load_predictor(model_dir: Path) -> Predict:
    """features [S, 126, 98] -> probabilities [S, 7], through the exported serving signature."""
    signature = tf.saved_model.load(str(model_dir)).signatures["serving_default"]

    def predict(features: np.ndarray) -> np.ndarray:
        return signature(features=tf.constant(features, dtype=tf.float32))["probabilities"].numpy()

    return predict


class ClipClassifier:
    """One clip in, pooled probabilities out (None when the clip holds no speech window)."""

    def __init__(self, predict: Predict) -> None:
        self.predict = predict
        self.extractor = AudioFeatureExtractor()
        self.detector = SpeechDetector()

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray | None:
        audio = prepare_audio(samples, sample_rate, extractor=self.extractor, detector=self.detector)
        if len(audio.features) == 0:
            return None
        return pool_window_probabilities(self.predict(audio.features))


def audio_predictions(data_dir: Path, model_dir: Path) -> tuple[list[str], list[np.ndarray | None]]:
    """True labels and predictions for every labelled speech file under data_dir (any loader layout)."""
    classify = ClipClassifier(load_predictor(model_dir))
    records = find_records(data_dir)
    predictions = []
    for record in records:
        samples, rate = read_samples(record.path)
        predictions.append(classify(samples, rate))
    return [record.label for record in records], predictions


def speaker_groups(records: Sequence[SpeechRecord]) -> dict[str, list[int]]:
    """Indices of records per corpus, per speaker, and per corpus and sex where the corpus tells it."""
    groups: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        groups.setdefault(record.corpus, []).append(index)
        groups.setdefault(record.speaker, []).append(index)
        if record.sex is not None:
            groups.setdefault(f"{record.corpus} {record.sex}", []).append(index)
    return groups


def write_validation_report(
    model_dir: Path,
    records: Sequence[SpeechRecord],
    out_dir: Path,
    snrs_db: Sequence[float],
    noise_kinds: Sequence[str],
    seed: int,
    extra: dict,
) -> dict:
    """Report of the exported model on the held-out speakers: clean, per corpus and speaker group, and with
    noise added (to the RAVDESS clips only, the figures earlier models were measured by; all clips if there
    is no RAVDESS among them)."""
    classify = ClipClassifier(load_predictor(model_dir))
    clips = [read_audio(record.path) for record in records]
    truth = [record.label for record in records]
    clean = [classify(clip, SAMPLE_RATE) for clip in clips]
    report = evaluate_predictions(truth, clean)

    groups = {}
    for name, indices in speaker_groups(records).items():
        view = evaluate_predictions([truth[i] for i in indices], [clean[i] for i in indices])
        groups[name] = {"n": view["n"], "accuracy": view["accuracy"], "uar": view["uar"],
                        "seed4_accuracy": view["seed4"]["accuracy"]}

    noise_set = [i for i, record in enumerate(records) if record.corpus == "ravdess"] or list(range(len(records)))
    # Babble is made from the other held-out speakers: voices the model has never heard either.
    voices: dict[str, list[np.ndarray]] = {}
    for i in noise_set:
        voices.setdefault(records[i].speaker, []).append(clips[i])
    augmenter = Augmenter(AugmentConfig(), voices, seed)
    noisy = {}
    for kind in noise_kinds:
        for snr in snrs_db:
            predictions = [
                classify(add_noise(clips[i], augmenter.noise(len(clips[i]), records[i].speaker, kind), snr),
                         SAMPLE_RATE)
                for i in noise_set
            ]
            view = evaluate_predictions([truth[i] for i in noise_set], predictions)
            noisy[f"{kind} {snr} dB"] = {"accuracy": view["accuracy"], "uar": view["uar"],
                                         "seed4_accuracy": view["seed4"]["accuracy"],
                                         "no_speech_found": sum(p is None for p in predictions)}
            print(f"noise {kind} {snr} dB: UAR {view['uar']:.3f}  four-class accuracy "
                  f"{view['seed4']['accuracy']:.3f}", flush=True)

    details = {"model": str(model_dir), "speech_detector": classify.detector.settings(), "speaker_groups": groups,
               "noise": noisy, **extra}
    write_report(report, out_dir, "Voice model on held-out speakers", extra=details)
    return report
