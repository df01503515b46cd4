"""Calibrators and calibration metrics on synthetic answers whose true calibration is known."""

import numpy as np
import pytest
from scipy.special import softmax

from training.calibration import (
    CANDIDATES,
    Calibration,
    Candidate,
    CrossFitData,
    calibration_metrics,
    compare_cross_fitted,
    cross_fit,
    cross_fit_table,
    equal_weights,
    ece_noise_floor,
    expected_calibration_error,
    fit,
    per_corpus_figures,
    plot_reliability,
    pooled,
)

CLASSES = 7


def overconfident_answers(n: int, sharpen: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), answers softmax(sharpen * z): calibrated by a scale of 1 / sharpen."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=1.5, size=(n, CLASSES))
    labels = np.array([rng.choice(CLASSES, p=p) for p in softmax(logits, axis=1)])
    return softmax(sharpen * logits, axis=1), labels


def test_ece_of_answers_right_as_often_as_they_say_is_small_and_of_overconfident_ones_large():
    calibrated, labels = overconfident_answers(6000, 1.0, seed=1)
    overconfident, labels_too = overconfident_answers(6000, 3.0, seed=1)
    assert expected_calibration_error(calibrated, labels) < 0.03
    assert expected_calibration_error(overconfident, labels_too) > 0.15


def test_ece_of_a_hand_made_case():
    # two answers at confidence 0.9, one right, one wrong: |0.5 - 0.9| = 0.4
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1]])
    assert expected_calibration_error(probabilities, np.array([0, 1])) == pytest.approx(0.4)


def test_temperature_fitted_on_one_half_calibrates_the_other():
    probabilities, labels = overconfident_answers(4000, 3.0, seed=2)
    samples = [row[None, :] for row in probabilities]
    calibration = fit("temperature", samples[:2000], labels[:2000])
    assert calibration.scale[0] == pytest.approx(1 / 3, rel=0.15)
    after = pooled(calibration, samples[2000:])
    assert expected_calibration_error(after, labels[2000:]) < 0.04
    before = calibration_metrics(probabilities[2000:], labels[2000:])
    assert calibration_metrics(after, labels[2000:])["nll"] < before["nll"]
    assert np.array_equal(after.argmax(axis=1), probabilities[2000:].argmax(axis=1))  # temperature keeps the ranking


def test_vector_scaling_learns_a_per_class_bias():
    probabilities, labels = overconfident_answers(4000, 1.0, seed=3)
    biased = probabilities * np.exp(np.r_[1.5, np.zeros(CLASSES - 1)])  # the model over-predicts class 0
    biased /= biased.sum(axis=1, keepdims=True)
    calibration = fit("vector", [row[None, :] for row in biased], labels)
    assert calibration.bias[0] - np.mean(calibration.bias[1:]) < -1.0


def test_pooled_answers_average_the_calibrated_windows():
    calibration = Calibration("temperature", (0.5,) * CLASSES, (0.0,) * CLASSES)
    windows = softmax(np.random.default_rng(4).normal(size=(3, CLASSES)), axis=1)
    expected = calibration.apply(windows).mean(axis=0)
    np.testing.assert_allclose(pooled(calibration, [windows])[0], expected, atol=1e-6)


def test_calibration_round_trips_through_its_record():
    calibration = Calibration("vector", tuple(np.linspace(0.5, 1.0, CLASSES)), tuple(np.linspace(-1, 1, CLASSES)))
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown calibration method"):
        fit("isotonic", [np.full((1, CLASSES), 1 / CLASSES)], np.array([0]))


def test_reliability_diagram_is_written(tmp_path):
    probabilities, labels = overconfident_answers(300, 2.0, seed=5)
    plot_reliability({"before": (probabilities, labels), "after": (probabilities, labels)}, tmp_path / "r.png", "t")
    assert (tmp_path / "r.png").stat().st_size > 1000


def test_ece_noise_floor_shrinks_with_more_samples():
    few, _ = overconfident_answers(100, 1.0, seed=6)
    many, _ = overconfident_answers(5000, 1.0, seed=6)
    assert ece_noise_floor(few) > 2 * ece_noise_floor(many)
    assert ece_noise_floor(many) < 0.03


def test_ece_p_is_small_for_over_confident_answers_only():
    calibrated, labels = overconfident_answers(400, 1.0, seed=7)
    overconfident, _ = overconfident_answers(400, 2.5, seed=7)  # the same labels, answers too sure of them
    data = CrossFitData([row[None, :] for row in calibrated], labels, np.full(400, "c"), np.full(400, "s"),
                        np.zeros(400, int))
    assert per_corpus_figures(calibrated, data)["c"]["ece_p"] > 0.05
    assert per_corpus_figures(overconfident, data)["c"]["ece_p"] < 0.01


def speakers_of_different_difficulty(per_speaker: int = 60) -> CrossFitData:
    """Two corpora of three speakers; corpus "hard" is over-confident by a temperature of 4, "easy" by 2."""
    samples, labels, corpora, groups = [], [], [], []
    for corpus, sharpen, seed in (("easy", 2.0, 10), ("hard", 4.0, 20)):
        for speaker in range(3):
            answers, truth = overconfident_answers(per_speaker, sharpen, seed=seed + speaker)
            samples += [row[None, :] for row in answers]
            labels += list(truth)
            corpora += [corpus] * per_speaker
            groups += [f"{corpus}:{speaker}"] * per_speaker
    return CrossFitData(samples, np.array(labels), np.array(corpora), np.array(groups), np.zeros(len(labels), int))


def test_equal_weights_give_each_corpus_and_each_speaker_within_it_the_same_total():
    speakers = np.array(["a1", "a1", "a1", "a2", "b1"])
    corpora = np.array(["a", "a", "a", "a", "b"])
    np.testing.assert_allclose(equal_weights(corpora), [0.25, 0.25, 0.25, 0.25, 1.0])
    np.testing.assert_allclose(equal_weights(speakers, within=corpora), [1 / 6, 1 / 6, 1 / 6, 0.5, 1.0])


def test_a_worst_group_fit_trades_the_average_for_the_group_it_fits_worst():
    data = speakers_of_different_difficulty(200)

    def group_nlls(calibration: Calibration) -> list[float]:
        answers = pooled(calibration, data.samples)
        return [calibration_metrics(answers[data.corpora == c], data.labels[data.corpora == c])["nll"]
                for c in ("easy", "hard")]

    average = fit("temperature", data.samples, data.labels)
    worst = fit("temperature", data.samples, data.labels, worst_of=data.corpora)
    assert max(group_nlls(worst)) < max(group_nlls(average))
    assert np.mean(group_nlls(worst)) >= np.mean(group_nlls(average)) - 1e-6


def test_a_speakers_cross_fitted_answers_do_not_depend_on_its_own_labels():
    data = speakers_of_different_difficulty()
    candidate = Candidate("temperature", "temperature", "corpus")
    answers = cross_fit(candidate, data)
    relabelled = data.labels.copy()
    held = data.groups == "hard:0"
    relabelled[held] = 0  # a speaker whose every clip is class 0 would pull the scale if it were fitted on
    again = cross_fit(candidate, CrossFitData(data.samples, relabelled, data.corpora, data.groups, data.parts))
    np.testing.assert_allclose(again[held], answers[held], atol=1e-6)
    assert not np.allclose(again[~held], answers[~held], atol=1e-4)


def test_the_comparison_reports_every_candidate_per_corpus_and_chooses_by_mean_corpus_nll():
    data = speakers_of_different_difficulty()
    result = compare_cross_fitted(data)
    assert set(result["candidates"]) == {c.name for c in CANDIDATES}
    scores = {name: c["mean_corpus_nll"] for name, c in result["candidates"].items()}
    assert result["chosen"] == min(scores, key=scores.get)
    for candidate in result["candidates"].values():
        assert set(candidate["per_corpus"]) == {"easy", "hard"}
        assert candidate["per_corpus"]["hard"]["n"] == 180
        # every candidate undoes most of the over-confidence of samples it never saw
        for corpus in ("easy", "hard"):
            assert candidate["per_corpus"][corpus]["nll"] < result["before"][corpus]["nll"]
    assert "| hard | vector | 180 |" in cross_fit_table(result)
