"""Metrics on hand-made cases: the numbers a reader would compute by hand."""

import json

import numpy as np
import pytest

from protos.emotion.v1.constants import LABELS
from training.reporting import evaluate_predictions, write_report


def one_hot(label: str, confidence: float = 0.9) -> np.ndarray:
    probs = np.full(len(LABELS), (1 - confidence) / (len(LABELS) - 1))
    probs[LABELS.index(label)] = confidence
    return probs


def test_perfect_predictions_score_one_in_both_views():
    truth = list(LABELS)
    report = evaluate_predictions(truth, [one_hot(label) for label in truth])
    assert report["n"] == 7
    assert report["accuracy"] == 1.0
    assert report["uar"] == 1.0
    assert report["seed4"]["n"] == 4
    assert report["seed4"]["accuracy"] == 1.0


def test_accuracy_uar_and_confusion_on_unbalanced_classes():
    # 3 angry (2 right, 1 called sad), 1 sad (right): accuracy 3/4, UAR mean(2/3, 1) = 5/6.
    truth = ["angry", "angry", "angry", "sad"]
    predictions = [one_hot("angry"), one_hot("angry"), one_hot("sad"), one_hot("sad")]
    report = evaluate_predictions(truth, predictions)
    assert report["accuracy"] == pytest.approx(0.75)
    assert report["uar"] == pytest.approx(5 / 6)
    assert report["per_class_recall"]["angry"] == pytest.approx(2 / 3)
    assert report["per_class_recall"]["sad"] == 1.0
    assert report["per_class_recall"]["happy"] is None  # no support: not part of the UAR
    angry_row = report["confusion"][LABELS.index("angry")]
    assert angry_row[LABELS.index("angry")] == 2 and angry_row[LABELS.index("sad")] == 1
    assert report["labels"] == list(LABELS)


def test_missing_prediction_counts_as_error_in_the_none_column():
    report = evaluate_predictions(["happy", "happy"], [one_hot("happy"), None])
    assert report["accuracy"] == 0.5
    row = report["confusion"][LABELS.index("happy")]
    assert len(row) == len(LABELS) + 1
    assert row[-1] == 1
    assert report["seed4"]["confusion"][report["seed4"]["labels"].index("happy")][-1] == 1


def test_four_class_view_keeps_four_class_samples_and_argmaxes_over_those_four():
    # Neutral is not one of the four: left out of seed4. The fear sample's top class is
    # disgust, but among the four classes fear wins.
    fear_probs = np.array([0.05, 0.6, 0.2, 0.05, 0.05, 0.03, 0.02])
    report = evaluate_predictions(["neutral", "fear"], [one_hot("neutral"), fear_probs])
    assert report["accuracy"] == 0.5
    seed4 = report["seed4"]
    assert seed4["n"] == 1
    assert seed4["labels"] == ["angry", "fear", "happy", "sad"]
    assert seed4["accuracy"] == 1.0


def test_unknown_true_label_is_rejected():
    with pytest.raises(ValueError, match="calm"):
        evaluate_predictions(["calm"], [one_hot("happy")])


def test_write_report_writes_json_markdown_and_both_confusion_images(tmp_path):
    report = evaluate_predictions(["angry", "sad", "neutral"], [one_hot("angry"), None, one_hot("sad")])
    extra = {"note": "hand-made", "noise": {"pink 10 dB": {"accuracy": 0.25, "no_speech_found": 2}}}
    write_report(report, tmp_path, "tiny", extra=extra)
    written = json.loads((tmp_path / "report.json").read_text())
    assert written["accuracy"] == pytest.approx(1 / 3)
    assert written["extra"] == extra
    markdown = (tmp_path / "report.md").read_text()
    assert "# tiny" in markdown and "| angry |" in markdown
    assert "| pink 10 dB | 0.250 | 2 |" in markdown  # rows of figures become a table
    assert '"note": "hand-made"' in markdown
    for image in ("confusion_7.png", "confusion_4.png"):
        assert (tmp_path / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_calibration_of_the_answers_given_is_reported():
    # four answers at confidence 0.9, two right: ECE |0.5 - 0.9| = 0.4; the missing answer is not counted
    truth = ["angry", "angry", "sad", "sad", "happy"]
    answers = [one_hot("angry"), one_hot("sad"), one_hot("sad"), one_hot("angry"), None]
    calibration = evaluate_predictions(truth, answers)["calibration"]
    assert calibration["n"] == 4
    assert calibration["ece"] == pytest.approx(0.4)
    assert calibration["mean_confidence"] == pytest.approx(0.9)
    assert calibration["nll"] == pytest.approx(-(2 * np.log(0.9) + 2 * np.log(0.1 / 6)) / 4)
