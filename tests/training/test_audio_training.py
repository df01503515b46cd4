"""The training script's split and weights: speaker-independent, class-balanced."""

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.ml

import keras  # noqa: F401  (the module needs the TensorFlow environment)

from protos.emotion.v1.constants import LABELS  # noqa: E402
from training.audio_dataset import WindowSet  # noqa: E402
from training.export import export_savedmodel  # noqa: E402
from training.speech_corpora import SpeechRecord  # noqa: E402
from training.train_audio import VALIDATION_SPEAKERS, build_model, sample_weights, split_records  # noqa: E402


def record(speaker: str, label: str = "happy") -> SpeechRecord:
    return SpeechRecord(Path(f"{speaker}.wav"), label, speaker, speaker.split(":")[0])


def test_validation_speakers_are_ravdess_actors_of_both_sexes():
    actors = [int(speaker.split(":")[1]) for speaker in VALIDATION_SPEAKERS]
    assert all(speaker.startswith("ravdess:") for speaker in VALIDATION_SPEAKERS)
    assert {actor % 2 for actor in actors} == {0, 1}  # odd actors are male, even female


def test_split_keeps_every_clip_of_a_validation_speaker_out_of_training():
    records = [record(f"ravdess:{actor:02d}") for actor in range(1, 21) for _ in range(3)] + [record("tess:OAF")]
    train, validation = split_records(records)
    assert {r.speaker for r in validation} == set(VALIDATION_SPEAKERS)
    assert not {r.speaker for r in train} & set(VALIDATION_SPEAKERS)
    assert len(train) + len(validation) == len(records)


def test_split_refuses_data_without_the_validation_speakers():
    with pytest.raises(SystemExit, match="validation speakers"):
        split_records([record("tess:OAF")])


def test_sample_weights_balance_classes_and_scale_tess():
    labels = np.array([0, 0, 0, 1, 1, 3], dtype=np.int32)
    speakers = np.array(["tess:OAF", "ravdess:01", "ravdess:02", "ravdess:01", "tess:YAF", "ravdess:03"])
    windows = WindowSet(np.zeros((6, 1, 1), np.float32), labels, speakers, np.arange(6), np.zeros(6, np.int32))
    weights = sample_weights(windows, tess_weight=0.5)
    totals = np.bincount(labels, weights=weights, minlength=len(LABELS))
    assert totals[0] == pytest.approx(totals[1]) == pytest.approx(totals[3])
    assert weights[0] == pytest.approx(0.5 * weights[1])  # same class, TESS counts half


def test_model_holds_its_normalisation_and_outputs_seven_probabilities(tmp_path):
    mean, variance = np.full(98, 5.0), np.full(98, 4.0)
    model = build_model(mean, variance, conv_filters=8, hidden=16, dropout=0.1, learning_rate=1e-3)
    probabilities = model(np.random.default_rng(0).normal(5.0, 2.0, (2, 126, 98)).astype(np.float32))
    assert probabilities.shape == (2, len(LABELS))
    np.testing.assert_allclose(np.asarray(probabilities).sum(axis=1), 1.0, atol=1e-5)
    normalisation = model.layers[1]
    np.testing.assert_allclose(np.asarray(normalisation.mean).ravel(), mean)

    exported = export_savedmodel(model, tmp_path, "audio", "features", (126, 98), LABELS,
                                 np.zeros((2, 126, 98), np.float32))  # verifies the reloaded signature
    assert (exported / "saved_model.pb").is_file()
