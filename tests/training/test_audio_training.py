"""The training script's split, weights, mixup batches, model layers, trials and leave-one-corpus-out run."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytestmark = pytest.mark.ml

import keras  # noqa: F401  (the module needs the TensorFlow environment)

from fusion_service.features.audio import SAMPLE_RATE, AudioFeatureExtractor  # noqa: E402
from protos.emotion.v1.constants import LABELS  # noqa: E402
from training import train_audio  # noqa: E402
from training.audio_dataset import WindowSet  # noqa: E402
from training.audio_model import LevelNormalisation, SpecAugment, build_model, input_statistics  # noqa: E402
from training.export import export_savedmodel  # noqa: E402
from training.speech_corpora import SpeechRecord  # noqa: E402
from training.train_audio import (  # noqa: E402
    HELD_OUT,
    VALIDATION_SPEAKERS,
    MixupBatches,
    clip_probabilities,
    corpus_views,
    leave_one_corpus_out,
    parse_settings,
    sample_weights,
    split_records,
)

SMALL = {"architecture": "conv1d", "conv_filters": 4, "hidden": 8, "dropout": 0.1, "learning_rate": 1e-3,
         "level_normalise": True, "spec_augment": False, "corpus_exponent": 0.5, "mixup_alpha": 0.0}


def record(speaker: str, label: str = "happy") -> SpeechRecord:
    return SpeechRecord(Path(f"{speaker}.wav"), label, speaker, speaker.split(":")[0])


def test_every_corpus_with_more_than_two_speakers_holds_some_out_and_ravdess_both_sexes():
    assert set(VALIDATION_SPEAKERS) == {"ravdess", "nemo", "turevdb", "urdu"}
    for corpus, speakers in VALIDATION_SPEAKERS.items():
        assert speakers and all(speaker.startswith(f"{corpus}:") for speaker in speakers)
    actors = [int(speaker.split(":")[1]) for speaker in VALIDATION_SPEAKERS["ravdess"]]
    assert {actor % 2 for actor in actors} == {0, 1}  # odd actors are male, even female


def test_split_keeps_every_clip_of_a_validation_speaker_out_of_training():
    records = [record(speaker) for speaker in HELD_OUT for _ in range(2)]
    records += [record(f"ravdess:{actor:02d}") for actor in range(1, 17)] + [record("tess:OAF"), record("nemo:WR0")]
    train, validation = split_records(records)
    assert {r.speaker for r in validation} == HELD_OUT
    assert not {r.speaker for r in train} & HELD_OUT
    assert len(train) + len(validation) == len(records)


def test_split_refuses_data_without_the_validation_speakers():
    with pytest.raises(SystemExit, match="validation speakers"):
        split_records([record("tess:OAF")])


def windows_of(labels: list[int], speakers: list[str], features: np.ndarray | None = None) -> WindowSet:
    n = len(labels)
    if features is None:
        features = np.zeros((n, 1, 1), np.float32)
    return WindowSet(features, np.asarray(labels, np.int32), np.asarray(speakers), np.arange(n, dtype=np.int32),
                     np.zeros(n, np.int32))


def random_windows(rng: np.random.Generator, records: list[SpeechRecord]) -> WindowSet:
    """One window of random features per record, with its label and speaker (RMS, feature 33, positive)."""
    features = rng.normal(0, 1, (len(records), 126, 98)).astype(np.float32)
    features[:, :, 33] = np.abs(features[:, :, 33]) + 0.01
    return windows_of([LABELS.index(r.label) for r in records], [r.speaker for r in records], features)


def test_sample_weights_give_classes_equal_weight_and_corpora_their_share_within_a_class():
    # angry: 3 nEMO windows, 1 URDU window; happy: 1 nEMO window; disgust: 2 RAVDESS windows.
    labels = [0, 0, 0, 0, 3, 1, 1]
    speakers = ["nemo:A", "nemo:B", "nemo:A", "urdu:SM1", "nemo:A", "ravdess:01", "ravdess:02"]
    windows = windows_of(labels, speakers)
    for exponent in (0.0, 0.5, 1.0):
        weights = sample_weights(windows, exponent)
        totals = np.bincount(labels, weights=weights, minlength=len(LABELS))
        assert totals[0] == pytest.approx(totals[1]) == pytest.approx(totals[3])
        assert weights.mean() == pytest.approx(1.0)
        nemo_angry, urdu_angry = weights[:3].sum(), weights[3]
        assert nemo_angry / urdu_angry == pytest.approx(3.0**exponent)  # corpus shares: (their windows)**exponent


def test_mixup_blends_windows_of_a_batch_and_their_one_hot_labels_and_weights_by_the_same_drawn_share():
    n = len(LABELS)  # window i holds the value i everywhere and is the only window of class i
    features = np.arange(n, dtype=np.float32)[:, None, None] * np.ones((n, 3, 2), np.float32)
    weights = np.linspace(0.5, 2.0, n).astype(np.float32)
    batches = MixupBatches(features, np.arange(n, dtype=np.int32), weights, batch_size=3, alpha=0.4, seed=3)
    assert len(batches) == 3
    taking_part, shares = set(), []
    for index in range(len(batches)):
        x, y, w = batches[index]
        assert y.shape == (len(x), n)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-6)
        for window, label, weight in zip(x, y, w):
            blended = np.flatnonzero(label)  # the windows in the blend, their shares as label values
            assert 1 <= len(blended) <= 2
            np.testing.assert_allclose(window, np.dot(label, np.arange(n)), rtol=1e-5)
            assert weight == pytest.approx(np.dot(label, weights), rel=1e-5)
            taking_part.update(blended)
            if len(blended) == 2:
                shares.append(label[blended].min())
    assert taking_part == set(range(n))  # an epoch uses every window
    assert len(shares) >= 3 and np.ptp(shares) > 0.05  # the shares are drawn, not fixed
    with pytest.raises(ValueError, match="alpha"):
        MixupBatches(features, np.arange(n, dtype=np.int32), weights, batch_size=3, alpha=0.0, seed=3)


def test_settings_override_the_recipe_and_unknown_names_are_refused():
    config = parse_settings(["architecture=cnn2d", "spec_augment=true", "corpus_exponent=0"])
    assert (config["architecture"], config["spec_augment"], config["corpus_exponent"]) == ("cnn2d", True, 0)
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        parse_settings(["colour=blue"])


def speech_like(seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(4)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    voiced = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12))
    return (0.1 * voiced * (np.sin(2 * np.pi * 3 * t) > -0.2) + 0.002 * rng.standard_normal(len(t))).astype(np.float32)


def test_level_normalisation_makes_features_of_a_louder_copy_equal():
    extractor = AudioFeatureExtractor()
    clip = speech_like()
    quiet, loud = extractor.batch(np.stack([0.1 * clip, 0.8 * clip]))
    assert np.abs(quiet - loud).max() > 10  # the raw features differ by the level (18 dB in log-mel)
    normalised = np.asarray(LevelNormalisation()(np.stack([quiet, loud])))
    np.testing.assert_allclose(normalised[0], normalised[1], rtol=1e-3, atol=1e-2)


def test_spec_augment_masks_in_training_only():
    frames = np.ones((8, 126, 98), np.float32)
    layer = SpecAugment(max_frames=20, max_bands=8, seed=1)
    np.testing.assert_array_equal(np.asarray(layer(frames, training=False)), frames)
    masked = np.asarray(layer(frames, training=True))
    assert 0 < (masked == 0).mean() < 0.35
    assert set(np.unique(masked)) <= {0.0, 1.0}
    assert (masked[:, :, :34] == 0).any(axis=2).any()  # a span of frames goes through every feature


@pytest.mark.parametrize("architecture", ["conv1d", "cnn2d"])
def test_model_holds_its_normalisation_and_outputs_seven_probabilities(architecture, tmp_path):
    features = np.random.default_rng(0).normal(5.0, 2.0, (4, 126, 98)).astype(np.float32)
    features[:, :, 33] = np.abs(features[:, :, 33]) + 0.01  # RMS is positive
    mean, variance = input_statistics(features, level_normalise=True)
    model_config = {name: value for name, value in SMALL.items() if name not in train_audio.TRAINING_ONLY}
    model = build_model(mean, variance, **{**model_config, "architecture": architecture, "spec_augment": True})
    probabilities = model(features[:2])
    assert probabilities.shape == (2, len(LABELS))
    np.testing.assert_allclose(np.asarray(probabilities).sum(axis=1), 1.0, atol=1e-5)
    normalisation = next(layer for layer in model.layers if isinstance(layer, keras.layers.Normalization))
    np.testing.assert_allclose(np.asarray(normalisation.mean).ravel(), mean, rtol=1e-5)
    exported = export_savedmodel(model, tmp_path, "audio", "features", (126, 98), LABELS,
                                 features[:2])  # verifies the reloaded signature
    assert (exported / "saved_model.pb").is_file()


def test_leave_one_corpus_out_never_trains_on_the_corpus_and_measures_all_of_its_clips(monkeypatch):
    rng = np.random.default_rng(2)
    train_records = [record("nemo:WR0", "angry"), record("nemo:WR0", "sad"), record("tess:OAF", "angry"),
                     record("tess:OAF", "sad"), record("urdu:SM4", "angry")]
    validation_records = [record("nemo:EB0", "angry"), record("urdu:SM1", "sad"), record("urdu:SM1", "angry")]

    trained_on: list[set[str]] = []
    original_train = train_audio.train

    def spying_train(config, train_windows, *args, **kwargs):
        trained_on.append(set(train_windows.speakers))
        return original_train(config, train_windows, *args, **kwargs)

    monkeypatch.setattr(train_audio, "train", spying_train)
    result = leave_one_corpus_out("urdu", SMALL, train_records, validation_records, random_windows(rng, train_records),
                                  random_windows(rng, validation_records), epochs=1)
    assert trained_on == [{"nemo:WR0", "tess:OAF"}]
    assert result["test"]["n"] == 3  # urdu:SM4 from training and both held-out urdu:SM1 clips
    assert set(result["validation_of_the_others"]) == {"nemo", "pooled", "score"}
    with pytest.raises(SystemExit, match="no such corpus"):
        leave_one_corpus_out("crema-d", SMALL, train_records, validation_records, random_windows(rng, train_records),
                             random_windows(rng, validation_records), epochs=1)


def test_training_checkpoints_every_epoch_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(train_audio, "CHECKPOINT_DIR", tmp_path / "checkpoints")
    rng = np.random.default_rng(5)
    train_records = [record("nemo:WR0", label) for label in ("angry", "sad", "happy", "fear")]
    validation_records = [record("nemo:EB0", "angry"), record("nemo:EB0", "sad")]

    train_windows, validation_windows = random_windows(rng, train_records), random_windows(rng, validation_records)
    train_audio.train(SMALL, train_windows, validation_windows, validation_records, 1, None, checkpoint=True)
    saved = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert saved["epoch"] == 1 and saved["config"] == SMALL
    assert {"last.keras", "best.keras"} <= {p.name for p in (tmp_path / "checkpoints").iterdir()}

    with pytest.raises(SystemExit, match="another configuration"):
        train_audio.train({**SMALL, "hidden": 16}, train_windows, validation_windows, validation_records, 2, None,
                          checkpoint=True, resume=True)
    model, resumed = train_audio.train(SMALL, train_windows, validation_windows, validation_records, 2, None,
                                       checkpoint=True, resume=True)
    assert [entry["epoch"] for entry in resumed.state["history"]] == [1, 2]
    assert json.loads((tmp_path / "checkpoints" / "state.json").read_text())["epoch"] == 2
    assert model(train_windows.features[:1]).shape == (1, len(LABELS))

    # A checkpoint from before mixup existed names no mixup_alpha: it was trained without mixup, and resumes.
    state_file = tmp_path / "checkpoints" / "state.json"
    state = json.loads(state_file.read_text())
    del state["config"]["mixup_alpha"]
    state_file.write_text(json.dumps(state))
    _, resumed = train_audio.train(SMALL, train_windows, validation_windows, validation_records, 3, None,
                                   checkpoint=True, resume=True)
    assert resumed.state["epoch"] == 3


def test_mixup_training_learns_from_blended_labels(tmp_path, monkeypatch):
    rng = np.random.default_rng(6)
    records = [record("nemo:WR0", label) for label in ("angry", "sad", "happy", "fear")]
    validation_records = [record("nemo:EB0", "angry"), record("nemo:EB0", "sad")]

    model, validation = train_audio.train({**SMALL, "mixup_alpha": 0.4}, random_windows(rng, records),
                                          random_windows(rng, validation_records), validation_records, 1, None)
    assert model.loss == "categorical_crossentropy"  # soft targets, not class indices
    assert validation.state["epoch"] == 1 and np.isfinite(validation.state["history"][0]["loss"])


def test_seed_ensemble_trial_records_each_member_and_scores_their_averaged_probabilities(monkeypatch):
    records = [record("nemo:EB0", "angry"), record("nemo:EB0", "sad")]
    windows = windows_of([LABELS.index(r.label) for r in records], [r.speaker for r in records])
    angry, sad = LABELS.index("angry"), LABELS.index("sad")

    def answers(p_angry: list[float]) -> np.ndarray:  # per window: angry p, sad 1 - p
        probabilities = np.zeros((len(p_angry), len(LABELS)), np.float32)
        probabilities[:, angry], probabilities[:, sad] = p_angry, 1 - np.asarray(p_angry)
        return probabilities

    # Each member is right on one clip only, and less sure where it is wrong: their average is right on both.
    members = {1: answers([0.9, 0.6]), 2: answers([0.4, 0.1])}
    seeds_trained = []

    def fake_train(config, train_windows, validation_windows, validation_records, epochs, patience, seed):
        seeds_trained.append(seed)
        views = corpus_views(validation_records, clip_probabilities(members[seed], windows, len(records)))
        state = {"best_epoch": 1, "training_seconds": 10, "history": [{"epoch": 1, "validation": views}]}
        return members[seed], SimpleNamespace(state=state)

    monkeypatch.setattr(train_audio, "train", fake_train)
    monkeypatch.setattr(train_audio, "window_probabilities", lambda model, windows: model)
    result = train_audio.trial(SMALL, windows, windows, records, 3, [1, 2])
    assert seeds_trained == [1, 2]
    assert [member["seed"] for member in result["members"]] == [1, 2]
    assert [member["validation"]["nemo"]["uar"] for member in result["members"]] == [0.5, 0.5]
    assert result["validation"]["nemo"]["uar"] == 1.0
    assert result["training_seconds"] == 20

    single = train_audio.trial(SMALL, windows, windows, records, 3, [1])
    assert single["seed"] == 1 and single["validation"] == result["members"][0]["validation"]
    assert "members" not in single


def test_seeds_are_read_from_a_comma_separated_list():
    assert train_audio.parse_seeds("7,8,9") == [7, 8, 9]
    with pytest.raises(Exception, match="comma"):
        train_audio.parse_seeds("7;8")
    with pytest.raises(Exception, match="once"):
        train_audio.parse_seeds("7,7")
