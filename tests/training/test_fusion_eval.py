"""Pairing, paired measures and the learned fusion's fitting, on answers made up for the purpose."""

import numpy as np
import pytest

from fusion_service.fusion import learned_logistic, weighted_sum
from protos.emotion.v1.constants import LABELS
from training.fusion_eval import (
    LEARNED_FORMS,
    Answers,
    choose_default,
    cross_fitted,
    evaluate_pairs,
    fit_logistic,
    learned_table,
    make_pairs,
)


def noisy_answers(name: str, labels: list[str], accuracy: float, parts: np.ndarray, seed: int,
                  confidence: float | None = None) -> Answers:
    """Answers right with probability `accuracy`, with a confidence that says so unless `confidence` is given."""
    rng = np.random.default_rng(seed)
    confidence = accuracy if confidence is None else confidence
    probabilities = []
    for label in labels:
        true = LABELS.index(label)
        guess = true if rng.random() < accuracy else int(rng.integers(len(LABELS)))
        p = np.full(len(LABELS), (1 - confidence) / (len(LABELS) - 1))
        p[guess] = confidence
        probabilities.append(p.astype(np.float32))
    return Answers(name, probabilities, labels, parts)


def corpus(n_per_class: int, parts_cycle=(0, 1, 2, 2)) -> tuple[list[str], np.ndarray]:
    labels = [label for label in LABELS for _ in range(n_per_class)]
    return labels, np.array([parts_cycle[i % len(parts_cycle)] for i in range(len(labels))])


def test_pairs_join_same_label_same_part_and_are_seeded():
    labels, parts = corpus(12)  # 3 faces of each label in parts 0 and 1, 6 in part 2
    audio = noisy_answers("a", labels, 0.6, parts, seed=0)
    video = noisy_answers("v", labels, 0.6, parts, seed=1)
    pairs = make_pairs("p", audio, video, seed=3, per_clip=3)
    assert len(pairs.labels) == 3 * len(labels)
    again = make_pairs("p", audio, video, seed=3, per_clip=3)
    assert all(np.array_equal(x, y) for x, y in zip(pairs.video, again.video))
    for a, v, label, part in zip(pairs.audio, pairs.video, pairs.labels, pairs.parts):
        face = next(i for i, p in enumerate(video.probabilities) if p is v)
        assert video.labels[face] == label and video.parts[face] == part


def test_clips_whose_label_has_no_face_are_left_out():
    labels, parts = corpus(4)
    audio = noisy_answers("a", labels, 0.6, parts, seed=0)
    faces = [label for label in labels if label != "neutral"]
    video = noisy_answers("v", faces, 0.9, np.array([2] * len(faces)), seed=1)
    pairs = make_pairs("p", audio, video, per_clip=2)
    assert "neutral" not in pairs.labels
    assert set(pairs.parts) == {2}  # audio parts 0 and 1 have no faces of their part


def test_paired_report_measures_each_answer_and_the_gain_over_the_better_single_one():
    labels, parts = corpus(30, parts_cycle=(2,))
    pairs = make_pairs("p", noisy_answers("a", labels, 0.5, parts, 0), noisy_answers("v", labels, 0.7, parts, 1))
    result = evaluate_pairs(pairs, learned_table(fit_logistic([pairs], "full, C=1")))
    assert result["video"]["uar"] > result["audio"]["uar"]
    assert result["audio"]["mean_confidence"] == pytest.approx(0.5, abs=1e-6)
    for figures in result["methods"].values():
        assert figures["uar_gain_over_better_single"] == pytest.approx(figures["uar"] - result["video"]["uar"])


def test_a_missing_answer_counts_as_an_error_alone_but_the_other_modality_answers_the_fusion():
    labels, parts = corpus(10, parts_cycle=(2,))
    audio = Answers("a", [None] * len(labels), labels, parts)
    video = noisy_answers("v", labels, 0.9, parts, 1)
    result = evaluate_pairs(make_pairs("p", audio, video, per_clip=1), {"weighted_sum": weighted_sum})
    assert result["audio"]["accuracy"] == 0.0 and result["audio"]["answered"] == 0
    assert result["methods"]["weighted_sum"]["accuracy"] == pytest.approx(result["video"]["accuracy"])


def test_learned_fusion_learns_to_trust_the_better_modality():
    labels, parts = corpus(60, parts_cycle=(0, 1))
    # the voice's answers are sure of themselves but nearly always wrong: a fixed 50/50 fusion would follow them
    pairs = make_pairs("p", noisy_answers("a", labels, 0.2, parts, 0, confidence=0.8),
                       noisy_answers("v", labels, 0.8, parts, 1))
    for form in LEARNED_FORMS:
        parameters = fit_logistic([pairs], form)
        assert parameters.share("video") > 0.7, form
    gains = cross_fitted([pairs], "per-modality scale")["p"]
    assert gains["learned_logistic"]["uar_gain"] > -0.05
    fused = learned_logistic({"audio": pairs.audio[0], "video": pairs.video[0]}, {"audio": 1, "video": 1},
                             parameters=parameters)
    assert fused.probabilities.sum() == pytest.approx(1.0, abs=1e-5)


def test_evaluate_fusion_needs_an_audio_and_a_face_folder(tmp_path, capsys):
    from training.evaluate import main

    with pytest.raises(SystemExit):
        main(["fusion", str(tmp_path)])
    assert "fusion takes AUDIO_DIR FACE_DIR, got 1 folders" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["fusion", str(tmp_path), str(tmp_path / "missing")])
    assert "does not exist" in capsys.readouterr().err


def test_the_learned_scales_of_an_overconfident_pair_are_below_one():
    labels, parts = corpus(60, parts_cycle=(0,))
    sharp = [Answers(a.name, [p ** 3 / (p ** 3).sum() for p in a.probabilities], a.labels, a.parts)
             for a in (noisy_answers("a", labels, 0.6, parts, 0), noisy_answers("v", labels, 0.6, parts, 1))]
    parameters = fit_logistic([make_pairs("p", *sharp)], "per-modality scale")
    assert 0 < parameters.coefficients["audio"][0, 0] < 1 and 0 < parameters.coefficients["video"][0, 0] < 1
    assert np.count_nonzero(parameters.coefficients["audio"] - np.diag(np.diag(parameters.coefficients["audio"]))) == 0


def test_the_default_is_the_most_accurate_of_the_calibrated_methods():
    gains = {"pairing 1": {"a": {"uar_gain": 0.10, "ece": 0.20}, "b": {"uar_gain": 0.05, "ece": 0.03},
                           "c": {"uar_gain": 0.04, "ece": 0.02}},
             "pairing 2": {"a": {"uar_gain": 0.08, "ece": 0.05}, "b": {"uar_gain": 0.02, "ece": 0.05},
                           "c": {"uar_gain": 0.03, "ece": 0.04}}}
    assert choose_default(gains) == "c"  # a is more accurate but not calibrated; c's worst gain beats b's
    uncalibrated = {name: {m: {**f, "ece": 0.5} for m, f in methods.items()} for name, methods in gains.items()}
    assert choose_default(uncalibrated) == "a"
