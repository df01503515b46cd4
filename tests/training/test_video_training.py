"""A tiny face training run on generated corpora: search record, export, reports, resume, evaluation CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.ml

import tensorflow as tf

import training.train_video as train_video  # noqa: E402
from protos.emotion.v1.constants import LABELS  # noqa: E402
from testkit.media import face_photo, no_face_photo  # noqa: E402
from training import evaluate  # noqa: E402
from training.video_eval import video_predictions  # noqa: E402

CK_NAMES = {"angry": "anger", "sad": "sadness"}


def write_image(path, image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """faces/fer2013/train/<class>/Training_<id>.png, faces/ck48/<class>/S<subject>_<seq>_<frame>.png and
    faces/taiwanese/PPTVEnn.jpg (full images: a portrait whose face the detector finds)."""
    root = tmp_path_factory.mktemp("datasets")
    rng = np.random.default_rng(0)
    for index, label in enumerate(LABELS):
        for n in range(10):
            image = rng.integers(0, 256, (48, 48), dtype=np.uint8)
            write_image(root / "faces" / "fer2013" / "train" / label / f"Training_{index * 100 + n}.png", image)
        if label != "neutral":
            for subject in range(4):
                image = rng.integers(0, 256, (48, 48), dtype=np.uint8)
                name = f"S{subject:03d}_{index:03d}_{subject:08d}.png"
                write_image(root / "faces" / "ck48" / CK_NAMES.get(label, label) / name, image)
    write_image(root / "faces" / "ck48" / "contempt" / "S001_009_00000001.png", np.zeros((48, 48), np.uint8))
    portrait = cv2.resize(face_photo(), (256, 256), interpolation=cv2.INTER_AREA)
    held_out = train_video.TAIWANESE_VALIDATION_PERFORMERS[0]
    for performer in ("01", held_out):
        for serial, letter in enumerate("bcd"):  # happy, sad, angry
            write_image(root / "faces" / "taiwanese" / f"{performer}11{letter}{serial:02d}.jpg", portrait)
    return root


@pytest.fixture(scope="module")
def trained(datasets, tmp_path_factory):
    """One tiny run (search, then two cosine cycles of one epoch), killed after its first epoch and resumed, as a
    later session would."""
    work = tmp_path_factory.mktemp("video_training")
    repository = work / "repository"
    args = ["--data", str(datasets), "--out", str(repository), "--cycles", "1,1"]
    finish_epoch = train_video.EpochCheckpoint.on_epoch_end

    def killed_after_first_epoch(self, epoch, logs=None):
        finish_epoch(self, epoch, logs)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "WIDTHS": (4, 8), "HEAD_UNITS": 8, "BATCH_SIZE": 16, "SEARCH_TRIALS": 2, "SEARCH_EPOCHS": 1,
            "SEARCH_TRAIN_SUBSET": 30, "CHECKPOINT_DIR": work / "checkpoints", "REPORT_DIR": work / "reports",
        }.items():
            patch.setattr(train_video, name, value)
        patch.setattr(train_video.EpochCheckpoint, "on_epoch_end", killed_after_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            train_video.main(args)
        interrupted_state = json.loads((work / "checkpoints" / "state.json").read_text())
        patch.setattr(train_video.EpochCheckpoint, "on_epoch_end", finish_epoch)
        assert train_video.main(args + ["--resume"]) == 0
    return work, interrupted_state


def test_training_searches_exports_reports_and_resumes_after_an_interruption(trained):
    work, interrupted_state = trained
    assert (interrupted_state["epoch"], interrupted_state["epochs"], interrupted_state["best_epoch"]) == (1, 2, 1)

    state = json.loads((work / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 2 and [h["epoch"] for h in state["history"]] == [1, 2]
    assert state["cycles"] == [1, 1]
    search = json.loads((work / "reports" / "search.json").read_text())
    assert len(search["trials"]) == 2 and search["best"] in [t["config"] for t in search["trials"]]
    assert state["config"] == search["best"]
    for view in ("fer2013_holdout", "ck48_heldout_subjects", "taiwanese_validation_performers"):
        report = json.loads((work / "reports" / view / "report.json").read_text())
        assert report["labels"] == list(LABELS) and "seed4" in report
        assert (work / "reports" / view / "confusion_7.png").is_file()
        assert (work / "reports" / view / "confusion_4.png").is_file()
    summary = (work / "reports" / "README.md").read_text()
    assert f"Best epoch {state['best_epoch']} of 2 trained" in summary and "CK+48 held-out subjects" in summary
    ck_report = json.loads((work / "reports" / "ck48_heldout_subjects" / "report.json").read_text())
    assert len(ck_report["extra"]["held_out_subjects"]) == 1 and ck_report["n"] == 6
    taiwanese = json.loads((work / "reports" / "taiwanese_validation_performers" / "report.json").read_text())
    assert taiwanese["extra"]["held_out_performers"] == [train_video.TAIWANESE_VALIDATION_PERFORMERS[0]]
    assert taiwanese["n"] == 3
    assert state["score_sets"] == ["fer", "ck", "tw"] and "tw_accuracy" in state["history"][0]

    version_dir = work / "repository" / "video" / "1"
    assert (version_dir / "assets" / "labels.txt").read_text().split() == list(LABELS)
    assert (version_dir / "assets.extra" / "tf_serving_warmup_requests").is_file()
    signature = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    outputs = signature(image=tf.zeros((3, 48, 48, 1)))
    np.testing.assert_allclose(outputs["probabilities"].numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_evaluation_detects_faces_in_photographs_and_counts_no_face_as_error(trained, tmp_path, capsys):
    repository = trained[0] / "repository"
    evaluation = tmp_path / "posed"
    write_image(evaluation / "happiness" / "astronaut.jpg", face_photo())
    write_image(evaluation / "neutral" / "rocket.png", no_face_photo())
    write_image(evaluation / "sadness" / "crop.png", np.full((48, 48), 128, np.uint8))

    true_labels, probabilities = video_predictions(evaluation, repository / "video" / "1")

    answers = dict(zip(true_labels, probabilities))
    assert sorted(answers) == ["happy", "neutral", "sad"]
    assert answers["neutral"] is None
    for label in ("happy", "sad"):
        assert answers[label].shape == (len(LABELS),)
        np.testing.assert_allclose(answers[label].sum(), 1.0, rtol=1e-5)

    assert evaluate.main(["video", str(evaluation), "--model", str(repository / "video" / "1"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["n"] == 3 and report["confusion"][LABELS.index("neutral")][-1] == 1


def test_measure_prints_an_exported_model_on_every_validation_set(trained, datasets, capsys):
    version_dir = trained[0] / "repository" / "video" / "1"

    assert train_video.main(["--data", str(datasets), "--measure", str(version_dir)]) == 0

    measured = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert measured["model"] == str(version_dir)
    assert {title: figures["n"] for title, figures in measured["validation"].items()} == {
        "FER2013 stratified hold-out": 7, "CK+48 held-out subjects": 6, "Taiwanese validation performers": 3}


def test_a_new_cycle_restarts_the_optimizer_from_the_last_weights(trained, datasets):
    work, _ = trained
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train_video, "BATCH_SIZE", 16)
        steps_per_epoch = -(-len(train_video.load_splits(datasets).x_train) // 16)
    model = tf.keras.models.load_model(work / "checkpoints" / "last.keras")
    # Two epochs trained, but the optimizer of the second cycle has only taken that cycle's steps.
    assert int(model.optimizer.iterations.numpy()) == steps_per_epoch


def test_the_summary_names_a_validation_set_that_joined_after_the_last_exported_epoch(tmp_path, monkeypatch):
    """A corpus added to a resumed run has no report until an epoch is exported: the epoch still ends cleanly."""
    monkeypatch.setattr(train_video, "REPORT_DIR", tmp_path)
    old = train_video.ValidationSet("fer", "FER2013", "fer", np.zeros((3, 48, 48, 1)), np.zeros(3, int), {})
    new = train_video.ValidationSet("tw", "Taiwanese", "tw", np.zeros((2, 48, 48, 1)), np.zeros(2, int), {})
    (tmp_path / "fer").mkdir()
    (tmp_path / "fer" / "report.json").write_text(json.dumps(
        {"n": 3, "accuracy": 0.5, "uar": 0.5, "seed4": {"accuracy": 0.5, "uar": 0.5}}))
    state = {"best_epoch": 1, "epoch": 2, "epochs": 2, "training_seconds": 60, "config": {}, "history": [
        {"epoch": 1, "loss": 1.0, "fer_accuracy": 0.5, "fer_uar": 0.5, "score": 0.5, "seconds": 30},
        {"epoch": 2, "loss": 0.9, "fer_accuracy": 0.4, "fer_uar": 0.4, "tw_accuracy": 0.6, "tw_uar": 0.6,
         "score": 0.5, "seconds": 30},
    ]}
    train_video.write_summary(state, train_video.Splits(np.zeros((0, 48, 48, 1)), np.zeros(0), np.zeros(0), [old, new]))
    summary = (tmp_path / "README.md").read_text()
    assert "| Taiwanese | 2 | no epoch exported since it joined |" in summary
    assert "| [FER2013](fer/report.md) | 3 | 0.500 |" in summary
